//! Export to PyTorch: writes, for a few graphs, the Python module of an
//! equivalent `torch.nn.Module` (`Graph::to_pytorch`), the weights
//! (safetensors, the graph's own names) and a test case (inputs, and the
//! outputs this crate computes for them).
//!
//! ```sh
//! cargo run --release -p nngraph-tests --example export_pytorch   # writes target/pytorch-export/
//! python3 scripts/compare_pytorch_export.py target/pytorch-export   # where torch is installed
//! ```
//!
//! The script loads each model with `load_state_dict` (strict: every name
//! must match), runs it in evaluation mode and compares every output, to
//! 1e-6 in f32 and 1e-12 in f64.

// `Colliding`'s names (tests/common/colliding.rs): `ﬁ` beside `fi`.
#![allow(uncommon_codepoints, confusable_idents, mixed_script_confusables)]

use nngraph::cells::{Gru, GruCell, LstmCell, Rnn};
use nngraph::ndarray::Array2;
use nngraph::prelude::*;
use serde_json::{json, Map, Value};
use std::error::Error;
use std::path::Path;

#[path = "../tests/common/colliding.rs"]
mod colliding;
use colliding::Colliding;

#[path = "../tests/common/elman.rs"]
mod elman;
use elman::ElmanStack;

graph! {
    /// The seed notebook's RNN cell.
    #[recurrent(h = new_h)]
    pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        y     = Sigmoid()(Linear(4, 1)(new_h));
    }

    /// A character model step: embedding, a nested LSTM cell, dropout
    /// (identity in evaluation), the scores and the loss.
    #[recurrent(h = h1, c = c1)]
    pub CharStep[vocab, hidden](x: usize, h: [hidden], c: [hidden], target: usize) -> (loss, logits, h1, c1) {
        (h1, c1) = LstmCell<24, 32>(Embedding(vocab, 24)(x), h, c);
        logits = Linear(hidden, vocab)(Dropout(0.2)(h1));
        loss = CrossEntropy()(logits, target);
    }

    /// The char model on the shipped stack (`nn.LSTM` in the export).
    #[recurrent(h = h_n, c = c_n)]
    pub CharDeep[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, logits, h_n, c_n)
    {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        logits = Linear(hidden, vocab)(y);
        loss = CrossEntropy()(logits, target);
    }

    /// Every other built-in layer and criterion.
    pub Zoo(a: [6], b: [6], p: [3], t: [3], class: usize) -> (mse, bce, nll, soft, mixed) {
        (u, v) = Split(2)(Linear(6, 8)(a));
        mixed = Concat()(CDiv()(ReLU()(u), AddConstant(2.5)(Sigmoid()(v))), CSub()(MulConstant(-0.5)(u), Identity()(v)));
        mse = Mse()(Narrow(1, 6)(mixed), b);
        prob = Sigmoid()(p);
        bce = Bce()(prob, t);
        nll = ClassNll()(LogSoftMax()(Linear(6, 3)(a)), class);
        soft = SoftMax()(Tanh()(Linear(6, 3)(b)));
    }
}

/// One input of a test case.
enum Data {
    Values(Array2<f64>),
    Ids(Vec<usize>),
}

/// Deterministic inputs in [-1, 1].
fn values(rows: usize, cols: usize, seed: f64) -> Data {
    Data::Values(Array2::from_shape_fn((rows, cols), |(r, c)| {
        (seed + 0.37 * r as f64 + 0.61 * c as f64).sin()
    }))
}

fn matrix_json<F: Float>(m: nngraph::ndarray::ArrayView2<'_, F>) -> Value {
    Value::Array(
        m.rows()
            .into_iter()
            .map(|row| row.iter().map(|v| json!(v.to_f64())).collect())
            .collect(),
    )
}

/// Writes `dir/name/{model.py, weights.safetensors, case.json}`.
fn export<F: Float, G: Graph<F>>(
    dir: &Path,
    name: &str,
    g: &mut G,
    inputs: &[(&str, Data)],
) -> Result<(), Box<dyn Error>> {
    let out = dir.join(name);
    std::fs::create_dir_all(&out)?;
    g.evaluate();
    let converted: Vec<Array2<F>> = inputs
        .iter()
        .map(|(_, d)| match d {
            Data::Values(v) => v.mapv(F::from_f64),
            Data::Ids(_) => Array2::zeros((0, 0)),
        })
        .collect();
    let feeds: Vec<Feed<'_, F>> = inputs
        .iter()
        .zip(&converted)
        .map(|((_, d), v)| match d {
            Data::Values(_) => Feed::Values(v.view()),
            Data::Ids(ids) => Feed::Ids(ids),
        })
        .collect();
    let mut tape = g.tape();
    g.forward_feeds(&mut tape, &feeds)?;

    let mut case_inputs = Map::new();
    for ((name, d), v) in inputs.iter().zip(&converted) {
        let value = match d {
            Data::Values(_) => json!({ "values": matrix_json(v.view()) }),
            Data::Ids(ids) => json!({ "ids": ids }),
        };
        case_inputs.insert(name.to_string(), value);
    }
    let mut case_outputs = Map::new();
    for name in g.output_names() {
        case_outputs.insert(name.to_string(), matrix_json(tape.value(name)?));
    }
    let dtype = if std::mem::size_of::<F>() == 4 {
        "f32"
    } else {
        "f64"
    };
    let case = json!({ "graph": g.name(), "dtype": dtype, "inputs": case_inputs, "outputs": case_outputs });
    std::fs::write(out.join("model.py"), g.to_pytorch())?;
    std::fs::write(out.join("case.json"), serde_json::to_string_pretty(&case)?)?;
    g.save(out.join("weights.safetensors"))?;
    println!(
        "{:<16} {} parameters, {dtype}: {}",
        name,
        g.num_params(),
        out.display()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pytorch-export");
    let mut rng = StdRng::seed_from_u64(7);
    let batch = 5;

    let mut seed = RnnCell::<f64>::new(&mut rng);
    export(
        &dir,
        "rnn_cell_f64",
        &mut seed,
        &[("x", values(batch, 2, 0.1)), ("h", values(batch, 4, 0.2))],
    )?;

    let char_inputs = |seed: f64| {
        [
            ("x", Data::Ids(vec![3, 0, 9, 12, 5])),
            ("h", values(batch, 32, seed)),
            ("c", values(batch, 32, seed + 1.0)),
            ("target", Data::Ids(vec![1, 2, 3, 4, 0])),
        ]
    };
    let mut char32 = CharStep::<f32>::new(&mut rng, 13, 32)?;
    export(&dir, "char_step_f32", &mut char32, &char_inputs(0.3))?;
    let mut char64 = CharStep::<f64>::new(&mut rng, 13, 32)?;
    export(&dir, "char_step_f64", &mut char64, &char_inputs(0.4))?;

    let mut lstm = LstmCell::<7, 16, f32>::new(&mut rng);
    let lstm_inputs = [
        ("x", values(batch, 7, 0.5)),
        ("h", values(batch, 16, 0.6)),
        ("c", values(batch, 16, 0.7)),
    ];
    export(&dir, "lstm_cell_f32", &mut lstm, &lstm_inputs)?;
    let mut gru = GruCell::<7, 16, f64>::new(&mut rng);
    export(
        &dir,
        "gru_cell_f64",
        &mut gru,
        &[("x", values(batch, 7, 0.8)), ("h", values(batch, 16, 0.9))],
    )?;

    let mut deep = CharDeep::<f64>::new(&mut rng, 13, 8, 3)?;
    export(
        &dir,
        "char_deep_f64",
        &mut deep,
        &[
            ("x", Data::Ids(vec![3, 0, 9, 12, 5])),
            ("h", values(batch, 24, 1.5)),
            ("c", values(batch, 24, 1.6)),
            ("target", Data::Ids(vec![1, 2, 3, 4, 0])),
        ],
    )?;
    let mut gru = Gru::<f32>::new(&mut rng, 7, 16, 2)?;
    export(
        &dir,
        "gru_stack_f32",
        &mut gru,
        &[("x", values(batch, 7, 1.7)), ("h", values(batch, 32, 1.8))],
    )?;
    let mut rnn = Rnn::<f64>::new(&mut rng, 7, 16, 2)?;
    export(
        &dir,
        "rnn_stack_f64",
        &mut rnn,
        &[("x", values(batch, 7, 1.9)), ("h", values(batch, 32, 2.0))],
    )?;
    let mut elman = ElmanStack::<f64>::new(&mut rng, 3)?;
    export(
        &dir,
        "elman_stack_f64",
        &mut elman,
        &[("x", values(batch, 5, 2.1)), ("h", values(batch, 18, 2.2))],
    )?;

    let mut zoo = Zoo::<f64>::new(&mut rng);
    let probs = Data::Values(Array2::from_shape_fn((batch, 3), |(r, c)| {
        ((r * 3 + c) as f64 * 0.07).fract()
    }));
    export(
        &dir,
        "zoo_f64",
        &mut zoo,
        &[
            ("a", values(batch, 6, 1.0)),
            ("b", values(batch, 6, 1.1)),
            ("p", values(batch, 3, 1.2)),
            ("t", probs),
            ("class", Data::Ids(vec![0, 2, 1, 1, 0])),
        ],
    )?;
    let mut colliding = Colliding::<f64>::new(&mut rng, 4)?;
    export(
        &dir,
        "colliding_f64",
        &mut colliding,
        &[
            ("lambda_", values(batch, 3, 1.3)),
            ("pass", values(batch, 2, 1.4)),
        ],
    )?;
    println!(
        "compare with: python3 scripts/compare_pytorch_export.py {}",
        dir.display()
    );
    Ok(())
}
