//! Saving and loading parameters by name in safetensors: round trips,
//! conversion between float types, and errors that leave the graph as it was.

mod common;

use common::SeedCell;
use nngraph::prelude::*;

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nngraph-{}-{name}.safetensors", std::process::id()))
}

#[test]
fn a_saved_graph_loads_back_exactly() {
    let a = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(1));
    let path = temp("roundtrip");
    a.save(&path).unwrap();
    let mut b = SeedCell::<f64>::zeros();
    b.load(&path).unwrap();
    assert_eq!(a.params(), b.params());
    std::fs::remove_file(path).unwrap();
}

#[test]
fn f32_files_load_into_f64_graphs_and_back() {
    let a = SeedCell::<f32>::new(&mut StdRng::seed_from_u64(2));
    let bytes = a.store().to_safetensors().unwrap();
    let mut b = SeedCell::<f64>::zeros();
    b.store_mut().load_safetensors(&bytes).unwrap();
    for (x, y) in a.params().iter().zip(b.params()) {
        assert_eq!(*x as f64, *y);
    }
    let mut c = SeedCell::<f32>::zeros();
    c.store_mut()
        .load_safetensors(&b.store().to_safetensors().unwrap())
        .unwrap();
    assert_eq!(a.params(), c.params());
}

graph! {
    /// The seed's cell with a hidden width of 5 instead of 4.
    #[recurrent(h = new_h)]
    pub WiderCell(x: [2], h: [5]) -> (y, new_h) {
        x2h   = Linear(2, 5)(x);
        h2h   = Linear(5, 5)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        out   = Linear(5, 1)(new_h);
        y     = Sigmoid()(out);
    }

    /// The seed's cell without its output layer.
    pub Fewer(x: [2], h: [4]) -> (new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
    }
}

#[test]
fn a_shape_mismatch_is_an_error_and_changes_nothing() {
    let seed = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(3))
        .store()
        .to_safetensors()
        .unwrap();
    let mut wider = WiderCell::<f64>::new(&mut StdRng::seed_from_u64(4));
    let before = wider.params().to_vec();
    let err = wider.store_mut().load_safetensors(&seed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "WiderCell: tensor `x2h.weight` has shape [4, 2] in the file, but the graph's is [5, 2]"
    );
    assert_eq!(wider.params(), &before[..]);
}

#[test]
fn missing_and_unexpected_tensors_are_errors() {
    let fewer = Fewer::<f64>::new(&mut StdRng::seed_from_u64(5))
        .store()
        .to_safetensors()
        .unwrap();
    let mut seed = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(6));
    let before = seed.params().to_vec();
    let err = seed.store_mut().load_safetensors(&fewer).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SeedCell: the file has no tensor `out.weight` (shape [1, 4])"),
        "{err}"
    );
    assert_eq!(seed.params(), &before[..]);

    let all = seed.store().to_safetensors().unwrap();
    let mut fewer = Fewer::<f64>::zeros();
    let err = fewer.store_mut().load_safetensors(&all).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Fewer: the file has tensors the graph does not: `out.bias`, `out.weight`"
    );
    assert!(fewer.params().iter().all(|&p| p == 0.0));
}

#[test]
fn a_corrupt_file_is_an_error_and_changes_nothing() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(7));
    let before = cell.params().to_vec();
    let mut bytes = cell.store().to_safetensors().unwrap();
    for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        let err = cell.store_mut().load_safetensors(&bytes[..cut]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("SeedCell: not a valid safetensors file"),
            "{err}"
        );
    }
    bytes[3] ^= 0x7f; // the header length
    assert!(cell.store_mut().load_safetensors(&bytes).is_err());
    let err = cell.load(temp("does-not-exist")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    assert_eq!(cell.params(), &before[..]);
}

#[test]
fn a_flipped_bit_in_a_saved_tensor_names_it_and_a_torch_file_without_checksums_loads() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(7));
    let before = cell.params().to_vec();
    let mut bytes = cell.store().to_safetensors().unwrap();
    let last = bytes.len() - 1; // the last byte of the last tensor's data
    bytes[last] ^= 0x10;
    let err = cell.store_mut().load_safetensors(&bytes).unwrap_err().to_string();
    assert!(
        err.starts_with("SeedCell: tensor `") && err.contains("do not match the checksum saved with them"),
        "{err}"
    );
    assert_eq!(cell.params(), &before[..]);

    // Saved by PyTorch's safetensors: no checksum, still loads.
    let torch = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle/lstm_cell_3_4.safetensors");
    let bytes = std::fs::read(&torch).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert!(metadata
        .metadata()
        .as_ref()
        .is_none_or(|m| !m.contains_key("crc32")));
    let mut lstm = nngraph::cells::LstmCell::<3, 4, f32>::new(&mut StdRng::seed_from_u64(0));
    lstm.load(&torch).unwrap();
}
