//! An LSTM character model trained on Tiny Shakespeare, the classic
//! char-rnn experiment, with the whole training step declared as one graph:
//! embedding, LSTM cell and cross-entropy loss.
//!
//! Run: `cargo run --release --example char_rnn [iterations]`
//!
//! Prints a progress bar and samples of generated text, and writes the
//! loss curve to `target/char_rnn_loss.svg`.

use indicatif::{ProgressBar, ProgressStyle};
use nngraph::prelude::*;
use rand::RngExt;
use std::fmt::Write as _;

graph! {
    /// One step of the model: the character `x` in, the loss against the
    /// next character `target` and the scores of every character out.
    #[recurrent(h = h1, c = c1)]
    pub CharLstm[vocab, hidden](x: usize, h: [hidden], c: [hidden], target: usize) -> (loss, logits, h1, c1) {
        gates = CAdd()(Linear(hidden, 4 * hidden)(Embedding(vocab, hidden)(x)), Linear(hidden, 4 * hidden)(h));
        (i, f, g, o) = Split(4)(gates);
        c1 = CAdd()(CMul()(Sigmoid()(f), c), CMul()(Sigmoid()(i), Tanh()(g)));
        h1 = CMul()(Sigmoid()(o), Tanh()(c1));
        logits = Linear(hidden, vocab)(h1);
        loss = CrossEntropy()(logits, target);
    }
}

const HIDDEN: usize = 128;
const STEPS: usize = 50;
const BATCH: usize = 32;

fn main() -> nngraph::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(600);
    let text = include_str!("data/tinyshakespeare.txt");
    let mut chars: Vec<char> = text
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    chars.sort_unstable();
    let index = |c: char| chars.binary_search(&c).expect("in the vocabulary");
    let data: Vec<usize> = text.chars().map(index).collect();
    println!("{} characters, a vocabulary of {}", data.len(), chars.len());

    let mut rng = StdRng::seed_from_u64(42);
    let mut model = CharLstm::<f32>::new(&mut rng, chars.len(), HIDDEN)?;
    println!("{} parameters", model.num_params());
    // The whole chunk at once, by the macro's plan: the embedding and the
    // input projection before the loop, the output layer and the loss after.
    let mut seq = model.seq();
    let mut adam = Adam::new(2e-3f32);

    // BATCH streams, each reading its own stretch of the text; the state is
    // carried from one chunk to the next (truncated BPTT).
    let stretch = data.len() / BATCH;
    let mut xs = nngraph::ndarray::Array2::<usize>::zeros((STEPS, BATCH));
    let mut ys = xs.clone();
    let mut losses = Vec::with_capacity(iterations);
    let bar = ProgressBar::new(iterations as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} {per_sec} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("a valid template"),
    );
    let (mut offset, mut smooth) = (0, (chars.len() as f64).ln());
    for it in 0..iterations {
        if offset + STEPS + 1 > stretch {
            offset = 0;
        }
        for b in 0..BATCH {
            for t in 0..STEPS {
                xs[[t, b]] = data[b * stretch + offset + t];
                ys[[t, b]] = data[b * stretch + offset + t + 1];
            }
        }
        offset += STEPS;

        // The state carried over from the last chunk, its gradient cut.
        model.forward_seq_carry(&mut seq, &xs, &ys)?;
        let loss = model.backward_seq_loss(&mut seq, Reduction::Mean)?;
        clip_grad_norm(model.store_mut(), 5.0);
        adam.step(model.store_mut());
        model.zero_grad();

        losses.push(loss as f64);
        smooth = 0.95 * smooth + 0.05 * loss as f64;
        bar.set_message(format!("loss {smooth:.3}"));
        bar.inc(1);
        if it % 200 == 199 {
            bar.suspend(|| {
                println!(
                    "\n-- after {} iterations, loss {smooth:.3}:\n{}\n",
                    it + 1,
                    sample(&model, &chars, &mut rng, 200)
                )
            });
        }
    }
    bar.finish();
    let elapsed = bar.elapsed().as_secs_f64();
    println!(
        "{iterations} iterations in {elapsed:.1} s: {:.1} per second",
        iterations as f64 / elapsed
    );
    println!("\n-- final sample:\n{}", sample(&model, &chars, &mut rng, 400));

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/char_rnn_loss.svg");
    std::fs::create_dir_all(path.parent().expect("a directory")).map_err(io)?;
    std::fs::write(&path, loss_curve(&losses)).map_err(io)?;
    println!("\nloss curve: {}", path.display());
    let picture = path.with_file_name("char_rnn_model.svg");
    std::fs::write(&picture, model.svg()).map_err(io)?;
    println!("model: {}", picture.display());
    Ok(())
}

fn io(e: std::io::Error) -> nngraph::Error {
    nngraph::Error::InvalidInput {
        graph: "char_rnn".into(),
        message: e.to_string(),
    }
}

/// Generates `len` characters, feeding each sampled character back in.
fn sample(model: &CharLstm<f32>, chars: &[char], rng: &mut StdRng, len: usize) -> String {
    let mut model = model.clone();
    model.evaluate();
    let mut tape = model.tape();
    let (mut h, mut c) = (
        Array2::<f32>::zeros((1, HIDDEN)),
        Array2::<f32>::zeros((1, HIDDEN)),
    );
    let mut x = chars.binary_search(&'\n').unwrap_or(0);
    let mut out = String::new();
    for _ in 0..len {
        let step = model
            .forward(&mut tape, &[x], &h, &c, &[0usize])
            .expect("shapes are fixed");
        // Softmax with temperature 0.8, then sample.
        let logits = step.logits.row(0).mapv(|v| v / 0.8);
        let max = logits.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let weights = logits.mapv(|v| (v - max).exp());
        let mut pick = rng.random::<f32>() * weights.sum();
        x = weights.len() - 1;
        for (i, &w) in weights.iter().enumerate() {
            if pick < w {
                x = i;
                break;
            }
            pick -= w;
        }
        h = step.h1.to_owned();
        c = step.c1.to_owned();
        out.push(chars[x]);
    }
    out
}

/// The loss per iteration as an SVG line chart.
fn loss_curve(losses: &[f64]) -> String {
    let (w, h, pad) = (640.0, 360.0, 40.0);
    let max = losses.iter().copied().fold(0.0, f64::max).max(1e-9);
    let n = losses.len().max(2) as f64 - 1.0;
    let mut points = String::new();
    for (i, l) in losses.iter().enumerate() {
        let x = pad + (w - 2.0 * pad) * i as f64 / n;
        let y = h - pad - (h - 2.0 * pad) * l / max;
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>
<text x="{pad}" y="{t}">cross-entropy per character (max {max:.2})</text>
<text x="{r}" y="{u}" text-anchor="end">iteration {it}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/>
</svg>
"##,
        b = h - pad,
        r = w - pad,
        t = pad - 10.0,
        u = h - 12.0,
        it = losses.len(),
    )
}
