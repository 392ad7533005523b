//! Saving and loading parameters by name, in the safetensors format (the
//! format of Hugging Face and PyTorch checkpoints): one tensor per named
//! parameter, in the graph's float type.
//!
//! Loading is strict and atomic: every parameter must be in the file with
//! its shape, the file must hold nothing else, and on any error the
//! parameters are left as they were.

use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::Float;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::Path;

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

    /// Writes [`to_safetensors`](Self::to_safetensors) to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes).map_err(|e| self.error(format!("cannot write {}: {e}", path.display())))
    }

    /// Sets every parameter from a safetensors file's bytes. `F32` and `F64`
    /// tensors are both accepted and converted. On error nothing changes.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
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
            match tensor.dtype() {
                Dtype::F32 => read::<F, 4>(tensor.data(), dst, |b| f32::from_le_bytes(b) as f64),
                Dtype::F64 => read::<F, 8>(tensor.data(), dst, f64::from_le_bytes),
                other => {
                    return Err(self.error(format!(
                        "tensor `{}` is {other:?}; parameters are F32 or F64",
                        spec.name
                    )))
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
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| self.error(format!("cannot read {}: {e}", path.display())))?;
        self.load_safetensors(&bytes)
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

fn read<F: Float, const N: usize>(data: &[u8], dst: &mut [F], decode: impl Fn([u8; N]) -> f64) {
    for (chunk, d) in data.chunks_exact(N).zip(dst) {
        let bytes: [u8; N] = chunk.try_into().expect("chunks of N bytes");
        *d = F::from_f64(decode(bytes));
    }
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
