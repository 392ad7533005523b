//! Saving and loading parameters by name, in the safetensors format (the
//! format of Hugging Face and PyTorch checkpoints): one tensor per named
//! parameter, in the graph's float type.
//!
//! Saving is atomic: the file is written beside its destination under a
//! temporary name, synced, and renamed over it, so a save that fails part
//! way (a full disk, a size limit) leaves the previous file as it was.
//!
//! Loading is strict and atomic: every parameter must be in the file once,
//! with its shape, the file must hold nothing else, every value must be
//! finite in the graph's float type (unless [`LoadOptions`] allow NaN and
//! infinity), and on any error the parameters are left as they were.

use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::Float;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What loading accepts beyond the graph's names and shapes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept NaN and infinite values (rejected by default: a checkpoint
    /// with them is almost always the record of a diverged run).
    pub allow_non_finite: bool,
}

impl<F: Float> ParamStore<F> {
    /// The parameters as a safetensors file, one tensor per name, as `F32`
    /// or `F64` like the graph.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let dtype = dtype_of::<F>();
        let bytes: Vec<Vec<u8>> = self
            .specs()
            .iter()
            .map(|s| to_bytes(&self.values()[s.range()]))
            .collect();
        let mut views = Vec::with_capacity(bytes.len());
        for (spec, data) in self.specs().iter().zip(&bytes) {
            let view =
                TensorView::new(dtype, spec.shape.clone(), data).map_err(|e| self.error(e.to_string()))?;
            views.push((spec.name.clone(), view));
        }
        safetensors::serialize(views, None).map_err(|e| self.error(e.to_string()))
    }

    /// Writes [`to_safetensors`](Self::to_safetensors) to `path`,
    /// atomically: on error the file at `path`, if any, is unchanged.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_safetensors()?;
        write_atomically(path, |file| file.write_all(&bytes)).map_err(|e| Error::Io {
            graph: self.graph().to_string(),
            action: "write",
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Sets every parameter from a safetensors file's bytes. `F32` and `F64`
    /// tensors are both accepted and converted. On error nothing changes.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        self.load_safetensors_with(bytes, LoadOptions::default())
    }

    /// [`load_safetensors`](Self::load_safetensors) with options.
    pub fn load_safetensors_with(&mut self, bytes: &[u8], options: LoadOptions) -> Result<()> {
        if let Some(name) = duplicate_name(bytes) {
            return Err(self.error(format!("the file names tensor `{name}` twice")));
        }
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| self.error(format!("not a valid safetensors file: {e}")))?;
        let mut staged = self.values().to_vec();
        for spec in self.specs() {
            let tensor = file.tensor(&spec.name).map_err(|_| {
                self.error(format!(
                    "the file has no tensor `{}` (shape {:?}); it has {}",
                    spec.name,
                    spec.shape,
                    list(file.names())
                ))
            })?;
            if tensor.shape() != spec.shape.as_slice() {
                return Err(self.error(format!(
                    "tensor `{}` has shape {:?} in the file, but the graph's is {:?}",
                    spec.name,
                    tensor.shape(),
                    spec.shape
                )));
            }
            let dst = &mut staged[spec.range()];
            let read = match tensor.dtype() {
                Dtype::F32 => read::<F, 4>(tensor.data(), dst, |b| f32::from_le_bytes(b) as f64),
                Dtype::F64 => read::<F, 8>(tensor.data(), dst, f64::from_le_bytes),
                other => {
                    return Err(self.error(format!(
                        "tensor `{}` is {other:?}; parameters are F32 or F64",
                        spec.name
                    )))
                }
            };
            if let Err((index, value)) = read {
                let what = if value.is_finite() {
                    format!("{value:e} overflows {}", std::any::type_name::<F>())
                } else {
                    format!("{value} is not finite (LoadOptions::allow_non_finite accepts it)")
                };
                if value.is_finite() || !options.allow_non_finite {
                    return Err(self.error(format!("tensor `{}`, element {index}: {what}", spec.name)));
                }
            }
        }
        let unexpected: Vec<&str> = file
            .names()
            .into_iter()
            .filter(|n| !self.specs().iter().any(|s| s.name == *n))
            .collect();
        if !unexpected.is_empty() {
            return Err(self.error(format!(
                "the file has tensors the graph does not: {}",
                list(unexpected)
            )));
        }
        self.values_mut().copy_from_slice(&staged);
        Ok(())
    }

    /// Reads `path` and [`load_safetensors`](Self::load_safetensors).
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_with(path, LoadOptions::default())
    }

    /// [`load`](Self::load) with options.
    pub fn load_with(&mut self, path: impl AsRef<Path>, options: LoadOptions) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            graph: self.graph().to_string(),
            action: "read",
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.load_safetensors_with(&bytes, options)
    }

    fn error(&self, message: String) -> Error {
        Error::Checkpoint {
            graph: self.graph().to_string(),
            message,
        }
    }
}

fn dtype_of<F: Float>() -> Dtype {
    if std::mem::size_of::<F>() == 4 {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

fn to_bytes<F: Float>(values: &[F]) -> Vec<u8> {
    let mut out = Vec::with_capacity(std::mem::size_of_val(values));
    for &v in values {
        match dtype_of::<F>() {
            Dtype::F32 => out.extend((v.to_f64() as f32).to_le_bytes()),
            _ => out.extend(v.to_f64().to_le_bytes()),
        }
    }
    out
}

/// Decodes `data` into `dst`; the first element that is not finite in `F`
/// (as `(index, value as read)`) if any, after decoding every element.
fn read<F: Float, const N: usize>(
    data: &[u8],
    dst: &mut [F],
    decode: impl Fn([u8; N]) -> f64,
) -> std::result::Result<(), (usize, f64)> {
    let mut first_bad = None;
    for (i, (chunk, d)) in data.chunks_exact(N).zip(dst).enumerate() {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(chunk);
        let value = decode(bytes);
        *d = F::from_f64(value);
        if first_bad.is_none() && !d.is_finite() {
            first_bad = Some((i, value));
        }
    }
    first_bad.map_or(Ok(()), Err)
}

/// Writes a file beside `path` under a temporary name with `write`, syncs
/// it and renames it over `path`; on any error the temporary file is
/// removed and `path` is untouched.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temporary_beside(path)?;
    let result = File::create(&tmp).and_then(|mut file| {
        write(&mut file)?;
        file.flush()?;
        file.sync_all()
    });
    let result = result.and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `dir/.name.<pid>.<n>.tmp`: in the destination's directory, so that the
/// rename stays on one file system; unique per process and call.
fn temporary_beside(path: &Path) -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// A tensor name the file's header lists twice (a JSON object read by
/// safetensors keeps only one of them, silently).
fn duplicate_name(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    let mut keys: Vec<String> = Vec::new();
    let (mut depth, mut chars) = (0usize, header.char_indices().peekable());
    while let Some((_, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            '"' => {
                let mut key = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                key.push('\\');
                                key.push(escaped);
                            }
                        }
                        '"' => break,
                        c => key.push(c),
                    }
                }
                // A key of the top-level object is a string followed by `:`.
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
                if depth == 1 && chars.peek().is_some_and(|&(_, c)| c == ':') {
                    if keys.contains(&key) {
                        return Some(key);
                    }
                    keys.push(key);
                }
            }
            _ => {}
        }
    }
    None
}

fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return "none".to_string();
    }
    names.sort_unstable();
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nngraph-checkpoint-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_that_fails_part_way_leaves_the_old_file_and_no_temporary() {
        let dir = scratch_dir("fail");
        let path = dir.join("model.safetensors");
        std::fs::write(&path, b"the previous checkpoint").unwrap();
        // Half the new file is written, then the disk is "full".
        let err = write_atomically(&path, |file| {
            file.write_all(b"half of the new")?;
            Err(io::Error::other("no space left on device"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "no space left on device");
        assert_eq!(std::fs::read(&path).unwrap(), b"the previous checkpoint");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["model.safetensors"], "the temporary file is removed");
        // A write that succeeds replaces the file whole.
        write_atomically(&path, |file| file.write_all(b"the new checkpoint")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"the new checkpoint");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_save_into_a_missing_directory_is_an_error_that_creates_nothing() {
        let dir = scratch_dir("missing");
        let store = ParamStore::<f64>::new("G", &[("l", vec![crate::ParamShape::new("w", vec![2])])]);
        let err = store.save(dir.join("no/such/dir/model.safetensors")).unwrap_err();
        assert!(err.to_string().starts_with("G: cannot write"), "{err}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A safetensors file written by hand: `(name, dtype, values)` per tensor,
    /// each of shape `[len]`.
    fn file(tensors: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
        let (mut header, mut data) = (Vec::new(), Vec::<u8>::new());
        for (name, dtype, bytes) in tensors {
            let n = bytes.len() / if *dtype == "F64" { 8 } else { 4 };
            header.push(format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{n}],\"data_offsets\":[{},{}]}}",
                data.len(),
                data.len() + bytes.len()
            ));
            data.extend(bytes);
        }
        let header = format!("{{{}}}", header.join(","));
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    fn f64s(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn store<F: Float>() -> ParamStore<F> {
        let mut s = ParamStore::<F>::new("G", &[("l", vec![crate::ParamShape::new("w", vec![2])])]);
        s.values_mut()
            .copy_from_slice(&[F::from_f64(0.5), F::from_f64(-0.5)]);
        s
    }

    #[test]
    fn well_formed_files_load() {
        let mut s = store::<f32>();
        s.load_safetensors(&file(&[("l.w", "F64", f64s(&[1.0, 2.0]))]))
            .unwrap();
        assert_eq!(s.values(), [1.0, 2.0]);
    }

    #[test]
    fn duplicate_names_are_an_error_and_change_nothing() {
        let mut s = store::<f64>();
        let bytes = file(&[
            ("l.w", "F64", f64s(&[1.0, 2.0])),
            ("l.w", "F64", f64s(&[3.0, 4.0])),
        ]);
        let err = s.load_safetensors(&bytes).unwrap_err();
        assert_eq!(err.to_string(), "G: the file names tensor `l.w` twice");
        assert_eq!(s.values(), [0.5, -0.5]);
    }

    #[test]
    fn values_that_overflow_f32_are_an_error_and_change_nothing() {
        let mut s = store::<f32>();
        let err = s
            .load_safetensors(&file(&[("l.w", "F64", f64s(&[1.0, 1e300]))]))
            .unwrap_err();
        assert_eq!(err.to_string(), "G: tensor `l.w`, element 1: 1e300 overflows f32");
        assert_eq!(s.values(), [0.5, -0.5]);
        // The same file fits an f64 graph.
        let mut s = store::<f64>();
        s.load_safetensors(&file(&[("l.w", "F64", f64s(&[1.0, 1e300]))]))
            .unwrap();
        assert_eq!(s.values(), [1.0, 1e300]);
    }

    #[test]
    fn non_finite_values_are_an_error_unless_allowed() {
        for bad in [f64::NAN, f64::INFINITY] {
            let bytes = file(&[("l.w", "F64", f64s(&[bad, 1.0]))]);
            let mut s = store::<f64>();
            let err = s.load_safetensors(&bytes).unwrap_err().to_string();
            assert!(err.contains("element 0") && err.contains("not finite"), "{err}");
            assert_eq!(s.values(), [0.5, -0.5]);
            let options = LoadOptions {
                allow_non_finite: true,
            };
            s.load_safetensors_with(&bytes, options).unwrap();
            assert!(!s.values()[0].is_finite() && s.values()[1] == 1.0);
        }
    }
}
