//! Saving and loading parameters by name, in the safetensors format (the
//! format of Hugging Face and PyTorch checkpoints): one tensor per named
//! parameter, in the graph's float type.
//!
//! Saving is atomic: the file is written beside its destination under a
//! temporary name, synced, and renamed over it, so a save that fails part
//! way (a full disk, a size limit) leaves the previous file as it was. A
//! symbolic link is followed and its target replaced (the link stays); a
//! path that is not a regular file (a folder, a device, a socket, a FIFO)
//! is an error and is left alone.
//!
//! Every saved tensor carries a CRC-32 of its bytes in the file's metadata
//! (the key `crc32`: a line `<8 hex digits> <name>` per tensor, sorted by
//! name, so that a model saved twice gives the same bytes), checked on load: a flipped bit in a tensor's data is
//! an error naming the tensor. Files without checksums (saved by PyTorch or
//! other tools) load as before; their data cannot be verified.
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
        let checksums = checksums(
            self.specs()
                .iter()
                .map(|s| s.name.as_str())
                .zip(bytes.iter().map(|b| &b[..])),
        );
        let metadata = [(CHECKSUMS.to_string(), checksums)];
        safetensors::serialize(views, Some(metadata.into_iter().collect()))
            .map_err(|e| self.error(e.to_string()))
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
        self.verify_checksums(bytes, &file)?;
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

    /// Checks every tensor's bytes against the CRC-32 saved with them, if
    /// the file has checksums: then every tensor must have one, and every
    /// checksum must name a tensor of the file.
    fn verify_checksums(&self, bytes: &[u8], file: &SafeTensors) -> Result<()> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| self.error(format!("not a valid safetensors file: {e}")))?;
        let Some(lines) = metadata.metadata().iter().find_map(|m| m.get(CHECKSUMS)) else {
            return Ok(());
        };
        let mut saved = Vec::new();
        for line in lines.lines() {
            match line.split_once(' ') {
                Some((crc, name)) if crc.len() == 8 => saved.push((name, crc)),
                _ => {
                    return Err(self.error(format!(
                        "checksum line `{line}` is malformed: the file is corrupt"
                    )))
                }
            }
        }
        saved.sort_unstable();
        let names = file.names();
        if let Some((name, _)) = saved.iter().find(|(n, _)| !names.contains(n)) {
            return Err(self.error(format!(
                "the file has a checksum for tensor `{name}`, which it does not hold: the file is corrupt"
            )));
        }
        let mut names = names;
        names.sort_unstable();
        for name in names {
            let Ok(i) = saved.binary_search_by(|(n, _)| (*n).cmp(name)) else {
                return Err(self.error(format!(
                    "the file has checksums, but none for tensor `{name}`: the file is corrupt"
                )));
            };
            let data = file.tensor(name).map_err(|e| self.error(e.to_string()))?.data();
            let computed = crc32fast::hash(data);
            let expected = saved[i].1;
            if u32::from_str_radix(expected, 16).ok() != Some(computed) {
                return Err(self.error(format!(
                    "tensor `{name}`: its bytes do not match the checksum saved with them (CRC-32 \
                     {expected} in the file, {computed:08x} of the bytes): the file is corrupt"
                )));
            }
        }
        Ok(())
    }

    fn error(&self, message: String) -> Error {
        Error::Checkpoint {
            graph: self.graph().to_string(),
            message,
        }
    }
}

/// The metadata key of the tensors' CRC-32s. One key: safetensors writes
/// metadata in hash-map order, so several keys would change places from
/// one save to the next.
const CHECKSUMS: &str = "crc32";

/// `<crc32 in 8 hex digits> <name>` per tensor, one per line, by name.
fn checksums<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut lines: Vec<String> = tensors
        .map(|(name, data)| format!("{:08x} {name}", crc32fast::hash(data)))
        .collect();
    lines.sort_unstable_by(|a, b| a[9..].cmp(&b[9..]));
    lines.join("\n")
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
/// removed and `path` is untouched. A symbolic link is followed: its
/// target is replaced, the link stays. A path that exists and is not a
/// regular file is an error.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let path = &regular_file_at(path)?;
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

/// The file a write to `path` should replace: `path` itself if it is a
/// regular file or does not exist, the end of the chain if it is a symbolic
/// link (a link to nothing yet included); an error if that is anything but
/// a regular file.
fn regular_file_at(path: &Path) -> io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    // Linux gives up after 40 links; so do we.
    for _ in 0..=40 {
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(at),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_file() {
            return Ok(at);
        }
        if !kind.is_symlink() {
            let what = if kind.is_dir() {
                "a folder"
            } else {
                "not a regular file (a device, a socket or a FIFO)"
            };
            let message = if at == path {
                format!("it is {what}; it is left as it is")
            } else {
                format!(
                    "it links to {}, which is {what}; both are left as they are",
                    at.display()
                )
            };
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let target = std::fs::read_link(&at)?;
        at = match at.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    ))
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
    /// A store of two tensors with distinct values, as saved.
    fn saved<F: Float>() -> (ParamStore<F>, Vec<u8>) {
        let mut s = ParamStore::<F>::new(
            "G",
            &[
                ("a", vec![crate::ParamShape::new("w", vec![2, 3])]),
                ("b", vec![crate::ParamShape::new("bias", vec![2])]),
            ],
        );
        for (i, v) in s.values_mut().iter_mut().enumerate() {
            *v = F::from_f64(0.25 * i as f64 - 0.8);
        }
        let bytes = s.to_safetensors().unwrap();
        (s, bytes)
    }

    #[test]
    fn every_flipped_bit_is_an_error_or_changes_nothing_and_data_flips_name_their_tensor() {
        fn sweep<F: Float>() {
            let (original, bytes) = saved::<F>();
            let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let (mut errors, mut data_errors) = (0, 0);
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let mut s = original.clone();
                s.values_mut().iter_mut().for_each(|v| *v = F::zero());
                match s.load_safetensors(&flipped) {
                    Ok(()) => {
                        assert!(bit / 8 < header, "a flip of data bit {bit} loaded");
                        assert_eq!(s.values(), original.values(), "bit {bit} loaded other values");
                    }
                    Err(e) => {
                        errors += 1;
                        assert!(
                            s.values().iter().all(|v| *v == F::zero()),
                            "a failed load changed the parameters"
                        );
                        if bit / 8 >= header {
                            data_errors += 1;
                            let e = e.to_string();
                            assert!(
                                e.contains("tensor `a.w`") || e.contains("tensor `b.bias`"),
                                "bit {bit}: {e}"
                            );
                            assert!(e.contains("checksum"), "bit {bit}: {e}");
                        }
                    }
                }
            }
            assert_eq!(data_errors, (bytes.len() - header) * 8);
            assert!(errors > data_errors, "header flips are caught too");
        }
        sweep::<f32>();
        sweep::<f64>();
    }

    #[test]
    fn files_without_checksums_load_and_incomplete_checksums_are_errors() {
        // As PyTorch's safetensors writes it: no metadata.
        let mut s = store::<f64>();
        s.load_safetensors(&file(&[("l.w", "F64", f64s(&[1.0, 2.0]))]))
            .unwrap();
        assert_eq!(s.values(), [1.0, 2.0]);
        // A checksum for every tensor but one, or for a tensor not there.
        let (original, _) = saved::<f64>();
        let views: Vec<_> = original
            .specs()
            .iter()
            .map(|spec| {
                (
                    spec.name.clone(),
                    to_bytes(&original.values()[spec.range()]),
                    spec.shape.clone(),
                )
            })
            .collect();
        let write = |lines: &[(&str, &str)]| {
            let tensors = views
                .iter()
                .map(|(n, b, shape)| (n.clone(), TensorView::new(Dtype::F64, shape.clone(), b).unwrap()));
            let lines: Vec<String> = lines.iter().map(|(crc, name)| format!("{crc} {name}")).collect();
            let meta = [("crc32".to_string(), lines.join("\n"))];
            safetensors::serialize(tensors, Some(meta.into_iter().collect())).unwrap()
        };
        let crc = |name: &str| {
            let (_, b, _) = views.iter().find(|(n, _, _)| n == name).unwrap();
            format!("{:08x}", crc32fast::hash(b))
        };
        let mut s = original.clone();
        s.load_safetensors(&write(&[(&crc("a.w"), "a.w"), (&crc("b.bias"), "b.bias")]))
            .unwrap();
        let err = s.load_safetensors(&write(&[(&crc("a.w"), "a.w")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "G: the file has checksums, but none for tensor `b.bias`: the file is corrupt"
        );
        let err = s
            .load_safetensors(&write(&[
                (&crc("a.w"), "a.w"),
                (&crc("b.bias"), "b.bias"),
                ("00000000", "c"),
            ]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("checksum for tensor `c`, which it does not hold"),
            "{err}"
        );
        let err = s.load_safetensors(&write(&[("123", "a.w")])).unwrap_err();
        assert!(
            err.to_string().contains("checksum line `123 a.w` is malformed"),
            "{err}"
        );
        // The same model saved twice gives the same bytes.
        assert_eq!(
            original.to_safetensors().unwrap(),
            original.clone().to_safetensors().unwrap()
        );
        // Other metadata is no checksum.
        let tensors = views
            .iter()
            .map(|(n, b, shape)| (n.clone(), TensorView::new(Dtype::F64, shape.clone(), b).unwrap()));
        let meta = [("format".to_string(), "pt".to_string())];
        s.load_safetensors(&safetensors::serialize(tensors, Some(meta.into_iter().collect())).unwrap())
            .unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_save_through_a_symbolic_link_replaces_its_target_and_keeps_the_link() {
        use std::os::unix::fs::symlink;
        let dir = scratch_dir("symlink");
        let (s, _) = saved::<f32>();
        std::fs::create_dir(dir.join("runs")).unwrap();
        let target = dir.join("runs/model-7.safetensors");
        std::fs::write(&target, b"the previous checkpoint").unwrap();
        // A relative link, as `ln -s runs/model-7.safetensors latest` makes.
        let link = dir.join("latest.safetensors");
        symlink("runs/model-7.safetensors", &link).unwrap();
        s.save(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), s.to_safetensors().unwrap());
        // A chain of links, the last one to nothing yet: the file is made.
        symlink("latest.safetensors", dir.join("chain")).unwrap();
        symlink("runs/new.safetensors", dir.join("dangling")).unwrap();
        s.save(dir.join("chain")).unwrap();
        s.save(dir.join("dangling")).unwrap();
        assert_eq!(
            std::fs::read(dir.join("runs/new.safetensors")).unwrap(),
            s.to_safetensors().unwrap()
        );
        // No temporary left anywhere.
        let mut names: Vec<_> = std::fs::read_dir(dir.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["model-7.safetensors", "new.safetensors"]);
        // A loop of links is an error.
        symlink("loop-b", dir.join("loop-a")).unwrap();
        symlink("loop-a", dir.join("loop-b")).unwrap();
        let err = s.save(dir.join("loop-a")).unwrap_err().to_string();
        assert!(err.contains("too many levels of symbolic links"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_save_onto_a_folder_or_a_socket_is_an_error_and_leaves_it() {
        use std::os::unix::fs::{symlink, FileTypeExt};
        let dir = scratch_dir("not-a-file");
        let (s, _) = saved::<f32>();
        let folder = dir.join("model.safetensors");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("inside"), b"kept").unwrap();
        let err = s.save(&folder).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "G: cannot write {}: it is a folder; it is left as it is",
                folder.display()
            )
        );
        assert_eq!(std::fs::read(folder.join("inside")).unwrap(), b"kept");
        // A socket, directly and through a link.
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        symlink("socket", dir.join("to-socket")).unwrap();
        for path in [socket.clone(), dir.join("to-socket")] {
            let err = s.save(&path).unwrap_err().to_string();
            assert!(err.contains("not a regular file"), "{err}");
            assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
        }
        assert!(s
            .save(dir.join("to-socket"))
            .unwrap_err()
            .to_string()
            .contains("it links to"));
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["model.safetensors", "socket", "to-socket"],
            "no temporary left"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
