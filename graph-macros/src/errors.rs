//! The error accumulator every stage shares, in the manner of serde_derive's
//! `Ctxt`: mistakes are pushed as they are found, each a `syn::Error`
//! spanned on the offending token, and combined into one result at the end,
//! so that a compile shows every independent mistake at once.

/// Collects errors while a stage goes on.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}
