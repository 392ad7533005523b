//! char-rnn as a tool, as `train.lua` and `sample.lua` were: a multi-layer
//! LSTM character model declared with `graph!`, trained over whole
//! sequences with truncated BPTT, validated, checkpointed, resumed and
//! sampled. `main.rs` is the command line; `tests/tool.rs` drives
//! the same functions on a tiny text. `train` writes to its `--out`
//! directory the checkpoints, `loss.svg` and the model's picture,
//! `model.svg`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nngraph::cells::{Gru, Lstm, Rnn};
use nngraph::ndarray::Array2;
use nngraph::prelude::*;
use nngraph::rand::RngExt;
use nngraph::runtime::optim::AdamState;
use nngraph::runtime::Feed;
use serde_json::{json, Value};
use std::error::Error;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The tool's result: errors are messages for the command line.
pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

graph! {
    /// One character in, the loss against the next and the scores of every
    /// character out: an embedding, `layers` LSTM layers (torch's
    /// `nn.LSTM`, dropout between them by `set_dropout`), dropout, the
    /// scores. The states of all layers are one group each.
    #[recurrent(h = h_n, c = c_n)]
    pub CharLstm[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, logits, h_n, c_n)
    {
        (y, h_n, c_n) = Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        logits = Linear(hidden, vocab)(Dropout(0.0)(y));
        loss = CrossEntropy()(logits, target);
    }

    /// The same with GRU layers (`nn.GRU`).
    #[recurrent(h = h_n)]
    pub CharGru[vocab, hidden, layers](x: usize, h: [layers * hidden], target: usize) -> (loss, logits, h_n) {
        (y, h_n) = Gru[hidden, hidden, layers](Embedding(vocab, hidden)(x), h);
        logits = Linear(hidden, vocab)(Dropout(0.0)(y));
        loss = CrossEntropy()(logits, target);
    }

    /// The same with tanh RNN layers (`nn.RNN`).
    #[recurrent(h = h_n)]
    pub CharRnn[vocab, hidden, layers](x: usize, h: [layers * hidden], target: usize) -> (loss, logits, h_n) {
        (y, h_n) = Rnn[hidden, hidden, layers](Embedding(vocab, hidden)(x), h);
        logits = Linear(hidden, vocab)(Dropout(0.0)(y));
        loss = CrossEntropy()(logits, target);
    }
}

/// The kind of recurrent layer, as char-rnn's `-model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// Long short-term memory (the default).
    #[default]
    Lstm,
    /// Gated recurrent units.
    Gru,
    /// Elman layers with tanh.
    Rnn,
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lstm" => Ok(ModelKind::Lstm),
            "gru" => Ok(ModelKind::Gru),
            "rnn" => Ok(ModelKind::Rnn),
            other => Err(format!("--model takes lstm, gru or rnn, not `{other}`")),
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Lstm => "lstm",
            ModelKind::Gru => "gru",
            ModelKind::Rnn => "rnn",
        })
    }
}

/// The model: one graph per kind of layer, any number of layers.
#[derive(Debug, Clone)]
pub enum Model {
    /// LSTM layers.
    Lstm(CharLstm<f32>),
    /// GRU layers.
    Gru(CharGru<f32>),
    /// tanh RNN layers.
    Rnn(CharRnn<f32>),
}

/// Runs `$body` with `$g` bound to the model's graph, whatever its kind.
macro_rules! with_graph {
    ($model:expr, $g:ident => $body:expr) => {
        match $model {
            Model::Lstm($g) => $body,
            Model::Gru($g) => $body,
            Model::Rnn($g) => $body,
        }
    };
}

impl Model {
    /// A model of `layers` layers of `hidden` units over `vocab`
    /// characters, initialised from `seed`.
    pub fn new(kind: ModelKind, layers: usize, vocab: usize, hidden: usize, seed: u64) -> Result<Model> {
        if layers == 0 {
            return Err("--layers must be at least 1".into());
        }
        let rng = &mut StdRng::seed_from_u64(seed);
        Ok(match kind {
            ModelKind::Lstm => Model::Lstm(CharLstm::new(rng, vocab, hidden, layers)?),
            ModelKind::Gru => Model::Gru(CharGru::new(rng, vocab, hidden, layers)?),
            ModelKind::Rnn => Model::Rnn(CharRnn::new(rng, vocab, hidden, layers)?),
        })
    }

    /// Zero states for `batch` sequences: one `(batch, width)` array per
    /// recurrent pair, in the order of `#[recurrent]`.
    fn zero_states(&self, batch: usize) -> Result<Vec<Array2<f32>>> {
        with_graph!(self, g => state_widths(g))?
            .into_iter()
            .map(|w| Ok(Array2::zeros((batch, w))))
            .collect()
    }
}

/// The width of each state of `g`, in the order of `#[recurrent]`.
fn state_widths<G: Graph<f32>>(g: &G) -> Result<Vec<usize>> {
    let spec = G::SPEC;
    Ok(spec
        .recurrent
        .iter()
        .map(|&(i, _)| g.input_width(spec.inputs[i].name))
        .collect::<std::result::Result<_, _>>()?)
}

/// What `train` is asked to do; saved in every checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// The text to learn.
    pub data: PathBuf,
    /// The kind of recurrent layer.
    pub model: ModelKind,
    /// Recurrent layers, 1 or more.
    pub layers: usize,
    /// Units per layer.
    pub hidden: usize,
    /// Characters per sequence (the BPTT length).
    pub seq: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Adam's learning rate (char-rnn's `learning_rate`).
    pub lr: f64,
    /// The learning rate is multiplied by this at the end of every pass
    /// over the training text from the `lr_decay_after`-th on (char-rnn's
    /// `learning_rate_decay`).
    pub lr_decay: f64,
    /// Passes over the training text before the rate decays (char-rnn's
    /// `learning_rate_decay_after`).
    pub lr_decay_after: usize,
    /// Dropout between layers and before the output layer, in training.
    pub dropout: f64,
    /// Gradients are clipped to [-grad_clip, grad_clip] (char-rnn's
    /// `grad_clip`).
    pub grad_clip: f64,
    /// Iterations in all, counting those of the run resumed.
    pub iters: usize,
    /// Validation loss and a checkpoint every this many iterations (and at
    /// the end).
    pub checkpoint_every: usize,
    /// Characters of validation text read for each validation loss.
    pub val_chars: usize,
    /// Where checkpoints, `loss.svg` and `model.svg` go.
    pub out: PathBuf,
    /// Seed of the initial weights and of the dropout masks.
    pub seed: u64,
    /// Whether to draw a progress bar.
    pub progress: bool,
    /// The options given on the command line, by name (`lr`, `hidden`): a
    /// resumed run takes these over the checkpoint's where it can, and
    /// refuses, by name, those it cannot (the model's and the batch's
    /// sizes).
    pub given: Vec<String>,
}

impl TrainOptions {
    /// Options that cannot make a run: an error naming the option.
    fn check(&self) -> Result<()> {
        let positive = [
            ("--seq", self.seq),
            ("--batch", self.batch),
            ("--hidden", self.hidden),
            ("--layers", self.layers),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1").into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {}", self.lr).into());
        }
        if self.grad_clip.is_nan() || self.grad_clip <= 0.0 {
            return Err(format!("--grad-clip must be positive, got {}", self.grad_clip).into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("--dropout must be in [0, 1), got {}", self.dropout).into());
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(format!("--lr-decay must be in (0, 1], got {}", self.lr_decay).into());
        }
        Ok(())
    }

    /// The learning rate for the iteration after `done` iterations, with
    /// `per_pass` iterations per pass over the training text: `lr`, times
    /// `lr_decay` for every pass completed from the `lr_decay_after`-th on.
    /// A function of the iteration, so a resumed run continues it exactly.
    pub fn learning_rate(&self, done: usize, per_pass: usize) -> f64 {
        let passes = done / per_pass.max(1);
        let decays = passes.saturating_sub(self.lr_decay_after.max(1) - 1);
        self.lr * self.lr_decay.powi(decays.min(i32::MAX as usize) as i32)
    }

    /// The options of a resumed run: the checkpoint's, except those given
    /// on this command line that a run can change on the way; an error
    /// naming any given one it cannot (the model's sizes, the batch).
    fn resumed(self, saved: TrainOptions, checkpoint: &Path) -> Result<TrainOptions> {
        let mut o = saved;
        for name in &self.given {
            let fixed = |flag: &str, now: usize, then: usize, what: &str| -> Result<()> {
                if now == then {
                    return Ok(());
                }
                Err(format!(
                    "--{flag} {now}: the run in {} has {then} {what}, which a resumed run keeps; \
                     start a new run (without --resume) to change it",
                    checkpoint.display()
                )
                .into())
            };
            match name.as_str() {
                "layers" => fixed("layers", self.layers, o.layers, "layers")?,
                "model" if self.model != o.model => {
                    return Err(format!(
                        "--model {}: the run in {} is of {} layers, which a resumed run keeps; \
                         start a new run (without --resume) to change it",
                        self.model,
                        checkpoint.display(),
                        o.model
                    )
                    .into())
                }
                "hidden" => fixed("hidden", self.hidden, o.hidden, "units per layer")?,
                "batch" => fixed("batch", self.batch, o.batch, "sequences per batch")?,
                "data" => o.data = self.data.clone(),
                "seq" => o.seq = self.seq,
                "lr" => o.lr = self.lr,
                "lr-decay" => o.lr_decay = self.lr_decay,
                "lr-decay-after" => o.lr_decay_after = self.lr_decay_after,
                "dropout" => o.dropout = self.dropout,
                "grad-clip" => o.grad_clip = self.grad_clip,
                "checkpoint-every" => o.checkpoint_every = self.checkpoint_every,
                "val-chars" => o.val_chars = self.val_chars,
                "seed" => o.seed = self.seed,
                _ => {}
            }
        }
        // Where it goes, how far and whether it shows are this command's.
        (o.out, o.iters, o.progress, o.given) = (self.out, self.iters, self.progress, self.given);
        Ok(o)
    }

    fn to_json(&self) -> Value {
        json!({
            "data": self.data, "model": self.model.to_string(), "layers": self.layers, "hidden": self.hidden, "seq": self.seq,
            "batch": self.batch, "lr": self.lr, "lr_decay": self.lr_decay,
            "lr_decay_after": self.lr_decay_after, "dropout": self.dropout, "grad_clip": self.grad_clip,
            "iters": self.iters, "checkpoint_every": self.checkpoint_every,
            "val_chars": self.val_chars, "seed": self.seed,
        })
    }

    /// The options saved in a checkpoint (`out`, `iters` and `progress`
    /// left for the resuming command to set). A checkpoint of format 1 has
    /// no decay: its rate stays.
    fn from_json(v: &Value) -> Result<TrainOptions> {
        let n = |k: &str| {
            v[k].as_u64()
                .map(|n| n as usize)
                .ok_or(format!("checkpoint options lack `{k}`"))
        };
        let f = |k: &str| v[k].as_f64().ok_or(format!("checkpoint options lack `{k}`"));
        Ok(TrainOptions {
            data: PathBuf::from(v["data"].as_str().ok_or("checkpoint options lack `data`")?),
            // Checkpoints before format 3 are of LSTM models.
            model: v["model"].as_str().unwrap_or("lstm").parse()?,
            layers: n("layers")?,
            hidden: n("hidden")?,
            seq: n("seq")?,
            batch: n("batch")?,
            lr: f("lr")?,
            lr_decay: v["lr_decay"].as_f64().unwrap_or(1.0),
            lr_decay_after: v["lr_decay_after"].as_u64().map_or(0, |n| n as usize),
            dropout: f("dropout")?,
            grad_clip: f("grad_clip")?,
            iters: 0,
            checkpoint_every: n("checkpoint_every")?,
            val_chars: n("val_chars")?,
            out: PathBuf::new(),
            seed: v["seed"].as_u64().ok_or("checkpoint options lack `seed`")?,
            progress: false,
            given: Vec::new(),
        })
    }
}

/// A text as character ids, split 90/5/5 into training, validation and
/// test text.
pub struct Corpus {
    /// The characters, sorted; a character's id is its index.
    pub vocab: Vec<char>,
    /// Character ids of the training text (the first 90%).
    pub train: Vec<usize>,
    /// Character ids of the validation text (the next 5%).
    pub val: Vec<usize>,
    /// Character ids of the test text (the last 5%).
    pub test: Vec<usize>,
}

impl Corpus {
    /// Reads the text at `path`; an error names the file when it cannot be
    /// read or is empty.
    pub fn read(path: &Path) -> Result<Corpus> {
        let text = fs::read_to_string(path)
            .map_err(|e| format!("{}: {e} (--data names the text)", path.display()))?;
        if text.is_empty() {
            return Err(format!("{}: the text is empty", path.display()).into());
        }
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let ids: Vec<usize> = text
            .chars()
            .map(|c| vocab.binary_search(&c).unwrap_or(0))
            .collect();
        let (n_train, n_val) = (ids.len() * 90 / 100, ids.len() * 5 / 100);
        Ok(Corpus {
            vocab,
            train: ids[..n_train].to_vec(),
            val: ids[n_train..n_train + n_val].to_vec(),
            test: ids[n_train + n_val..].to_vec(),
        })
    }
}

/// Batches of `batch` streams, each reading its own stretch of `ids`,
/// `seq` characters at a time: inputs `(seq, batch)` and the next
/// characters as targets.
struct Batches {
    stretch: usize,
    seq: usize,
    batch: usize,
}

impl Batches {
    fn new(len: usize, seq: usize, batch: usize, what: &str) -> Result<Batches> {
        let stretch = len / batch.max(1);
        if stretch < seq + 1 {
            return Err(format!(
                "the {what} text ({len} characters) is too short for {batch} streams of {} characters",
                seq + 1
            )
            .into());
        }
        Ok(Batches { stretch, seq, batch })
    }

    /// Chunks per pass over the text.
    fn chunks(&self) -> usize {
        (self.stretch - 1) / self.seq
    }

    /// Chunk `k` (wrapping), written into `xs` and `ys`.
    fn fill(&self, ids: &[usize], k: usize, xs: &mut Array2<usize>, ys: &mut Array2<usize>) {
        let offset = (k % self.chunks()) * self.seq;
        for b in 0..self.batch {
            for t in 0..self.seq {
                let at = b * self.stretch + offset + t;
                xs[[t, b]] = ids[at];
                ys[[t, b]] = ids[at + 1];
            }
        }
    }
}

/// Where a run is: what a checkpoint holds besides the weights.
struct RunState {
    /// Iterations done.
    iteration: usize,
    /// The states carried from one chunk to the next, one `(batch, width)`
    /// array per recurrent pair (`layers * hidden` wide: every layer's).
    carry: Vec<Array2<f32>>,
    /// Training loss per iteration.
    train_losses: Vec<f64>,
    /// `(iteration, validation loss)`.
    val_losses: Vec<(usize, f64)>,
}

/// What `train` reports.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Iterations done in all, counting those of the run resumed.
    pub iterations: usize,
    /// The training loss of the last iteration.
    pub final_train_loss: f64,
    /// The training loss of every iteration of the run, resumed ones included.
    pub train_losses: Vec<f64>,
    /// `(iteration, validation loss)` at every checkpoint, the run resumed's included.
    pub val_losses: Vec<(usize, f64)>,
    /// The loss on the test text at the end.
    pub test_loss: f64,
    /// Iterations per second of this run (checkpoints included).
    pub iterations_per_second: f64,
    /// The checkpoint written last.
    pub last_checkpoint: PathBuf,
}

/// Trains from scratch, or from the checkpoint `resume`, until
/// `options.iters` iterations in all.
pub fn train(options: TrainOptions, resume: Option<&Path>) -> Result<TrainReport> {
    // A resumed run keeps the options it was started with, except those
    // given now that it can change (see `TrainOptions::resumed`).
    let resume = resume.map(latest_checkpoint).transpose()?;
    let saved = resume.as_deref().map(Checkpoint::read).transpose()?;
    let options = match (&saved, &resume) {
        (Some(saved), Some(dir)) => {
            let then = TrainOptions::from_json(&saved.meta["options"])
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            options.resumed(then, dir)?
        }
        _ => options,
    };
    options.check()?;
    if let (Some(saved), Some(dir)) = (&saved, &resume) {
        if saved.run.iteration >= options.iters {
            return Err(format!(
                "{} is at iteration {}, and --iters is {}: nothing to train (raise --iters)",
                dir.display(),
                saved.run.iteration,
                options.iters
            )
            .into());
        }
    }
    let corpus = Corpus::read(&options.data)?;
    let (mut model, mut adam, mut run) = match saved {
        None => {
            let model = Model::new(
                options.model,
                options.layers,
                corpus.vocab.len(),
                options.hidden,
                options.seed,
            )?;
            let run = RunState {
                iteration: 0,
                carry: model.zero_states(options.batch)?,
                train_losses: Vec::new(),
                val_losses: Vec::new(),
            };
            (model, Adam::new(options.lr as f32), run)
        }
        Some(saved) => {
            if corpus.vocab != saved.vocab {
                return Err(format!(
                    "{} is not the text this checkpoint was trained on",
                    options.data.display()
                )
                .into());
            }
            let mut adam = Adam::new(options.lr as f32);
            with_graph!(&saved.model, g => adam.restore(saved.adam, g.store()))?;
            (saved.model, adam, saved.run)
        }
    };
    let batches = Batches::new(corpus.train.len(), options.seq, options.batch, "training")?;
    fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    with_graph!(&mut model, g => g.set_dropout(Some(options.dropout)))?;
    let picture = with_graph!(&model, g => g.svg());
    fs::write(options.out.join("model.svg"), picture)?;

    let todo = options.iters.saturating_sub(run.iteration);
    let bar = progress_bar(todo, options.progress);
    let (mut xs, mut ys) = (
        Array2::zeros((options.seq, options.batch)),
        Array2::zeros((options.seq, options.batch)),
    );
    let mut tape = with_graph!(&model, g => g.tape());
    let mut last_checkpoint = PathBuf::new();
    let start = std::time::Instant::now();
    while run.iteration < options.iters {
        batches.fill(&corpus.train, run.iteration, &mut xs, &mut ys);
        // Dropout masks depend on the seed and the pass count only, so a
        // resumed run draws the masks the uninterrupted run would have.
        tape.set_calls(run.iteration as u64);
        adam.lr = options.learning_rate(run.iteration, batches.chunks()) as f32;
        let loss = with_graph!(&mut model, g => {
            g.training();
            g.set_seed(options.seed);
            train_step(g, &mut tape, &mut run.carry, &xs, &ys, &mut adam, options.grad_clip as f32)
        })?;
        run.iteration += 1;
        run.train_losses.push(loss);
        bar.set_message(format!("loss {loss:.3}"));
        bar.inc(1);
        if run.iteration % options.checkpoint_every.max(1) == 0 || run.iteration == options.iters {
            let val = with_graph!(&mut model, g => mean_loss(g, &corpus.val, options.seq, options.batch, options.val_chars))?;
            run.val_losses.push((run.iteration, val));
            bar.suspend(|| {
                println!(
                    "iteration {}: train loss {loss:.3}, validation loss {val:.3}",
                    run.iteration
                )
            });
            last_checkpoint = Checkpoint::write(&options, &corpus.vocab, &model, &adam, &run)?;
            plot_losses(&options.out.join("loss.svg"), &run)?;
        }
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let test_loss = with_graph!(&mut model, g => mean_loss(g, &corpus.test, options.seq, options.batch, options.val_chars))?;
    Ok(TrainReport {
        iterations: run.iteration,
        final_train_loss: run.train_losses.last().copied().unwrap_or(f64::NAN),
        train_losses: run.train_losses,
        val_losses: run.val_losses,
        test_loss,
        iterations_per_second: todo as f64 / elapsed.max(1e-9),
        last_checkpoint,
    })
}

fn progress_bar(len: usize, visible: bool) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if !visible {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} {per_sec} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// One iteration: the chunk over all steps from the carried states, the
/// mean loss over `T·B` characters, BPTT, clipping and an Adam step. The
/// final states become the next chunk's (their gradient cut).
fn train_step<G: Graph<f32>>(
    g: &mut G,
    tape: &mut Tape<f32>,
    carry: &mut [Array2<f32>],
    xs: &Array2<usize>,
    ys: &Array2<usize>,
    adam: &mut Adam<f32>,
    grad_clip: f32,
) -> Result<f64> {
    let states: Vec<Feed<'_, f32>> = carry.iter().map(|c| Feed::Values(c.view())).collect();
    g.forward_feeds(
        tape,
        &feeds::<G>(Feed::IdSeq(xs.view()), &states, Feed::IdSeq(ys.view())),
    )?;
    let loss = g.backward_loss(tape, Reduction::Mean)?;
    clip_grad_value(g.store_mut(), grad_clip)?;
    adam.step(g.store_mut())?;
    g.zero_grad();
    for (&(i, _), c) in G::SPEC.recurrent.iter().zip(carry.iter_mut()) {
        c.assign(&tape.final_state(G::SPEC.inputs[i].name)?);
    }
    Ok(loss as f64)
}

/// The feeds of a char model, in declaration order: `x`, each state (in
/// the order of `#[recurrent]`), `target`.
fn feeds<'a, G: Graph<f32>>(
    x: Feed<'a, f32>,
    states: &'a [Feed<'_, f32>],
    target: Feed<'a, f32>,
) -> Vec<Feed<'a, f32>> {
    let spec = G::SPEC;
    (0..spec.inputs.len())
        .map(|i| match spec.recurrent.iter().position(|&(s, _)| s == i) {
            Some(k) => states[k].reborrow(),
            None if spec.inputs[i].name == "x" => x,
            None => target,
        })
        .collect()
}

/// The mean loss per character over (up to `chars` characters of) `ids`,
/// in evaluation mode, the states carried from chunk to chunk.
fn mean_loss<G: Graph<f32>>(
    g: &mut G,
    ids: &[usize],
    seq_len: usize,
    batch: usize,
    chars: usize,
) -> Result<f64> {
    let ids = &ids[..ids.len().min(chars.max(batch * (seq_len + 1)))];
    let batches = Batches::new(ids.len(), seq_len, batch, "validation")?;
    g.evaluate();
    let mut tape = g.tape();
    let (mut xs, mut ys) = (Array2::zeros((seq_len, batch)), Array2::zeros((seq_len, batch)));
    let carried = vec![Feed::Carry; G::SPEC.recurrent.len()];
    let mut total = 0.0;
    for k in 0..batches.chunks() {
        batches.fill(ids, k, &mut xs, &mut ys);
        g.forward_feeds(
            &mut tape,
            &feeds::<G>(Feed::IdSeq(xs.view()), &carried, Feed::IdSeq(ys.view())),
        )?;
        total += tape.value("loss")?.iter().map(|&l| l as f64).sum::<f64>();
    }
    g.training();
    Ok(total / (batches.chunks() * seq_len * batch) as f64)
}

/// A checkpoint: a directory with `model.safetensors` (loads into the
/// exported PyTorch model too), the optimizer's moments, and `run.json`
/// (options, vocabulary, iteration, carried states, loss history).
struct Checkpoint {
    meta: Value,
    vocab: Vec<char>,
    model: Model,
    adam: AdamState<f32>,
    run: RunState,
}

impl Checkpoint {
    /// Writes `out/ckpt_NNNNNN` atomically: into a temporary directory,
    /// every file synced, then renamed into place.
    fn write(
        options: &TrainOptions,
        vocab: &[char],
        model: &Model,
        adam: &Adam<f32>,
        run: &RunState,
    ) -> Result<PathBuf> {
        let name = format!("ckpt_{:06}", run.iteration);
        let dir = options.out.join(&name);
        let tmp = options.out.join(format!(".{name}.tmp"));
        if tmp.is_dir() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let written = Self::write_into(&tmp, options, vocab, model, adam, run).and_then(|()| {
            if dir.exists() {
                fs::remove_dir_all(&dir)?;
            }
            fs::rename(&tmp, &dir)?;
            Ok(())
        });
        if let Err(e) = written {
            // No half-written checkpoint is left behind.
            let _ = fs::remove_dir_all(&tmp);
            return Err(format!("{}: {e}", dir.display()).into());
        }
        Ok(dir)
    }

    /// The files of a checkpoint, into `tmp`.
    fn write_into(
        tmp: &Path,
        options: &TrainOptions,
        vocab: &[char],
        model: &Model,
        adam: &Adam<f32>,
        run: &RunState,
    ) -> Result<()> {
        let state = adam.state();
        with_graph!(model, g => {
            g.save(tmp.join("model.safetensors"))?;
            // The moments have the parameters' layout: saved as two copies
            // of the model holding them.
            for (file, moment) in [("adam_m.safetensors", &state.m), ("adam_v.safetensors", &state.v)] {
                let mut holder = g.clone();
                if moment.len() == holder.params().len() {
                    holder.params_mut().copy_from_slice(moment);
                }
                holder.save(tmp.join(file))?;
            }
        });
        carry_store(&run.carry).save(tmp.join("carry.safetensors"))?;
        let meta = json!({
            "format": FORMAT,
            "options": options.to_json(),
            "vocab": vocab.iter().collect::<String>(),
            "iteration": run.iteration,
            "adam_steps": state.steps,
            "train_losses": run.train_losses,
            "val_losses": run.val_losses,
        });
        let mut file = fs::File::create(tmp.join("run.json"))?;
        file.write_all(serde_json::to_string(&meta)?.as_bytes())?;
        file.sync_all()?;
        Ok(())
    }

    /// Reads the checkpoint in `dir`; an error names the checkpoint and
    /// the file.
    fn read(dir: &Path) -> Result<Checkpoint> {
        Self::read_files(dir).map_err(|e| format!("checkpoint {}: {e}", dir.display()).into())
    }

    fn read_files(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join("run.json");
        let text = fs::read_to_string(&path).map_err(|e| format!("run.json: {e}"))?;
        let meta: Value = serde_json::from_str(&text).map_err(|e| format!("run.json: {e}"))?;
        let format = meta["format"].as_u64().unwrap_or(1);
        if format > FORMAT {
            return Err(format!(
                "run.json is of format {format}; this char_rnn reads formats 1 to {FORMAT} (a newer char_rnn wrote it)"
            )
            .into());
        }
        let vocab: Vec<char> = meta["vocab"]
            .as_str()
            .ok_or("run.json lacks the vocabulary")?
            .chars()
            .collect();
        let o = &meta["options"];
        let size = |k: &str| {
            o[k].as_u64()
                .map(|n| n as usize)
                .ok_or(format!("run.json lacks `{k}`"))
        };
        let kind: ModelKind = o["model"].as_str().unwrap_or("lstm").parse()?;
        let (layers, batch, hidden) = (size("layers")?, size("batch")?, size("hidden")?);
        let mut model = Model::new(kind, layers, vocab.len(), hidden, 0)?;
        let mut moments = Vec::new();
        with_graph!(&mut model, g => {
            load_params(g, &dir.join("model.safetensors"), format, layers)
                .map_err(|e| format!("model.safetensors: {e}"))?;
            for file in ["adam_m.safetensors", "adam_v.safetensors"] {
                let mut holder = g.clone();
                load_params(&mut holder, &dir.join(file), format, layers).map_err(|e| format!("{file}: {e}"))?;
                moments.push(holder.params().to_vec());
            }
        });
        let steps = meta["adam_steps"].as_u64().ok_or("run.json lacks `adam_steps`")? as u32;
        let v = moments.pop().unwrap_or_default();
        let m = moments.pop().unwrap_or_default();
        // Before the first step Adam has no moments; the files then hold
        // the weights (see `write`), which are not moments.
        let (m, v) = if steps == 0 {
            (Vec::new(), Vec::new())
        } else {
            (m, v)
        };
        let carry = if format >= 3 {
            let mut store = carry_store(&model.zero_states(batch)?);
            store
                .load(dir.join("carry.safetensors"))
                .map_err(|e| format!("carry.safetensors: {e}"))?;
            carry_arrays(&store, &model.zero_states(batch)?)
        } else if format == 2 {
            // A state per layer (h1, c1, h2, c2, ...): grouped by kind.
            let per_layer = vec![Array2::zeros((batch, hidden)); 2 * layers];
            let mut store = carry_store(&per_layer);
            store
                .load(dir.join("carry.safetensors"))
                .map_err(|e| format!("carry.safetensors: {e}"))?;
            group_states(&carry_arrays(&store, &per_layer))
        } else {
            // Format 1 kept the carried states in run.json, as numbers.
            meta["carry"]
                .as_array()
                .ok_or("run.json lacks `carry`")?
                .iter()
                .map(|c| {
                    let values: Vec<f32> = c
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_f64())
                        .map(|v| v as f32)
                        .collect();
                    Array2::from_shape_vec((batch, hidden), values)
                        .map_err(|e| format!("run.json: a carried state: {e}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|states| group_states(&states))?
        };
        let floats = |k: &str| -> Vec<f64> {
            meta[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect()
        };
        let val_losses = meta["val_losses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_u64()? as usize, p[1].as_f64()?)))
            .collect();
        Ok(Checkpoint {
            run: RunState {
                iteration: meta["iteration"].as_u64().ok_or("run.json lacks `iteration`")? as usize,
                carry,
                train_losses: floats("train_losses"),
                val_losses,
            },
            meta,
            vocab,
            model,
            adam: AdamState { steps, m, v },
        })
    }
}

/// The training loss per iteration and the validation loss, with axes.
fn plot_losses(path: &Path, run: &RunState) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = run
        .train_losses
        .iter()
        .chain(run.val_losses.iter().map(|(_, l)| l))
        .copied()
        .filter(|l| l.is_finite())
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("char-rnn: cross-entropy per character", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..run.iteration.max(1) as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc("nats per character")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let train = run
        .train_losses
        .iter()
        .enumerate()
        .map(|(i, &l)| ((i + 1) as f64, l));
    chart
        .draw_series(LineSeries::new(train, BLUE.mix(0.6)))?
        .label("training")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let val = run.val_losses.iter().map(|&(i, l)| (i as f64, l));
    chart
        .draw_series(LineSeries::new(val.clone(), RED.stroke_width(2)))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(val.map(|p| Circle::new(p, 3, RED.filled())))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// What `sample` is asked to do.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// A checkpoint directory, or an `--out` folder (its latest).
    pub checkpoint: PathBuf,
    /// Divides the scores before the softmax: below 1 more conservative,
    /// above 1 more varied.
    pub temperature: f64,
    /// Text fed in before sampling (it is the start of the output).
    pub prime: String,
    /// Characters to generate after the prime.
    pub length: usize,
    /// Seed of the sampling.
    pub seed: u64,
}

/// Generates text from a checkpoint: the prime, then `length` characters,
/// each drawn from the model's distribution at `temperature` and fed back.
pub fn sample(options: &SampleOptions) -> Result<String> {
    if !(options.temperature >= 0.0 && options.temperature.is_finite()) {
        return Err(format!(
            "--temperature must be 0 (always the likeliest character) or more, got {}",
            options.temperature
        )
        .into());
    }
    let saved = Checkpoint::read(&latest_checkpoint(&options.checkpoint)?)?;
    let vocab = saved.vocab;
    let unknown: String = options
        .prime
        .chars()
        .filter(|c| vocab.binary_search(c).is_err())
        .collect();
    if !unknown.is_empty() {
        return Err(format!("the prime has characters the model never saw: {unknown:?}").into());
    }
    let mut model = saved.model;
    let mut rng = StdRng::seed_from_u64(options.seed);
    with_graph!(&mut model, g => {
        g.evaluate();
        generate(g, &vocab, options, &mut rng)
    })
}

fn generate<G: Graph<f32>>(
    g: &G,
    vocab: &[char],
    options: &SampleOptions,
    rng: &mut StdRng,
) -> Result<String> {
    let spec = G::SPEC;
    let state_names: Vec<&str> = spec.recurrent.iter().map(|&(i, _)| spec.inputs[i].name).collect();
    let hidden = g.input_width(state_names[0])?;
    let mut states: Vec<Array2<f32>> = vec![Array2::zeros((1, hidden)); state_names.len()];
    let mut tape = g.tape();
    let mut out = options.prime.clone();
    // With no prime, start after a newline, as at the start of a speech.
    let prime: Vec<usize> = if options.prime.is_empty() {
        vec![vocab.binary_search(&'\n').unwrap_or(0)]
    } else {
        options
            .prime
            .chars()
            .filter_map(|c| vocab.binary_search(&c).ok())
            .collect()
    };
    // One step, without a target: the loss is not computed.
    let step = |tape: &mut Tape<f32>, x: usize, states: &mut Vec<Array2<f32>>| -> Result<Vec<f32>> {
        let given: Vec<Feed<'_, f32>> = states.iter().map(|s| Feed::Values(s.view())).collect();
        let x = [x];
        g.forward_feeds(tape, &feeds::<G>(Feed::Ids(&x), &given, Feed::Absent))?;
        drop(given);
        for (s, name) in states.iter_mut().zip(&state_names) {
            s.assign(&tape.final_state(name)?);
        }
        Ok(tape.value("logits")?.row(0).to_vec())
    };
    let mut logits = Vec::new();
    for &x in &prime {
        logits = step(&mut tape, x, &mut states)?;
    }
    for _ in 0..options.length {
        let x = draw(&logits, options.temperature, rng);
        out.push(vocab[x]);
        logits = step(&mut tape, x, &mut states)?;
    }
    Ok(out)
}

/// Draws an index from `softmax(logits / temperature)`; at temperature 0,
/// the likeliest (the first of equals).
fn draw(logits: &[f32], temperature: f64, rng: &mut StdRng) -> usize {
    if temperature == 0.0 {
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return best;
    }
    let scaled: Vec<f64> = logits.iter().map(|&l| l as f64 / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scaled.iter().map(|&s| (s - max).exp()).collect();
    let mut pick = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, &w) in weights.iter().enumerate() {
        if pick < w {
            return i;
        }
        pick -= w;
    }
    weights.len() - 1
}

/// The parameters a checkpoint holds (for the tests).
pub fn checkpoint_params(dir: &Path) -> Result<Vec<f32>> {
    let saved = Checkpoint::read(dir)?;
    Ok(with_graph!(&saved.model, g => g.params().to_vec()))
}

/// The format of the checkpoints this writes: 3 is one model for any
/// depth (`model`, torch's names `y_lstm.weight_ih_l0`, each state one
/// group of every layer's); 2 kept a graph per depth (`h1_next_lstm.weight_ih`,
/// a state per layer) and the carried states in `carry.safetensors`; 1 kept
/// those in run.json as numbers (492 KB for the default model). 1 and 2
/// are still read.
pub const FORMAT: u64 = 3;

/// The checkpoint `path` names: itself if it holds one (`run.json`), or
/// the latest `ckpt_NNNNNN` in it (a training run's `--out`).
pub fn latest_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.join("run.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let entries = fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let latest = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: usize = name.strip_prefix("ckpt_")?.parse().ok()?;
            e.path().join("run.json").is_file().then_some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n);
    match latest {
        Some((_, dir)) => Ok(dir),
        None => Err(format!(
            "{} is no checkpoint (no run.json) and holds none (no ckpt_NNNNNN with one)",
            path.display()
        )
        .into()),
    }
}

/// The carried states as named tensors (`state0.value`, ...), to be saved
/// and loaded like parameters: atomically, checksummed.
fn carry_store(carry: &[Array2<f32>]) -> ParamStore<f32> {
    let names: Vec<String> = (0..carry.len()).map(|i| format!("state{i}")).collect();
    let nodes: Vec<(&str, Vec<ParamShape>)> = names
        .iter()
        .zip(carry)
        .map(|(n, c)| (n.as_str(), vec![ParamShape::new("value", c.shape().to_vec())]))
        .collect();
    let mut store = ParamStore::new("carry", &nodes);
    let mut values = store.values_mut().iter_mut();
    for c in carry {
        // `c` first: zip stops on it without taking a value from `values`.
        c.iter().zip(values.by_ref()).for_each(|(&v, d)| *d = v);
    }
    store
}

/// The states in `store`, shaped as `like`.
fn carry_arrays(store: &ParamStore<f32>, like: &[Array2<f32>]) -> Vec<Array2<f32>> {
    let mut values = store.values().iter().copied();
    like.iter()
        .map(|l| Array2::from_shape_fn(l.dim(), |_| values.next().unwrap_or(0.0)))
        .collect()
}

/// The states of a checkpoint before format 3, one per layer and kind in
/// the order `h1, c1, h2, c2, ...`, as one group per kind: `h` is
/// `h1 | h2 | ...` side by side, then `c` likewise.
fn group_states(per_layer: &[Array2<f32>]) -> Vec<Array2<f32>> {
    (0..2)
        .map(|kind| {
            let views: Vec<_> = per_layer.iter().skip(kind).step_by(2).map(|a| a.view()).collect();
            nngraph::ndarray::concatenate(nngraph::ndarray::Axis(1), &views).unwrap_or_default()
        })
        .collect()
}

/// Sets `g`'s parameters from a checkpoint file of `format`: before 3, an
/// LSTM model of `layers` graphs written out, whose tensors are renamed to
/// the stack's (`h2_next_lstm.weight_ih` is `y_lstm.weight_ih_l1`).
fn load_params<G: Graph<f32>>(g: &mut G, path: &Path, format: u64, layers: usize) -> Result<()> {
    if format >= 3 {
        return Ok(g.load(path)?);
    }
    let mut renames: Vec<(String, String)> = vec![
        ("h1_next_embedding.weight".into(), "y_embedding.weight".into()),
        ("logits.weight".into(), "logits.weight".into()),
        ("logits.bias".into(), "logits.bias".into()),
    ];
    for l in 0..layers {
        for t in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
            renames.push((format!("h{}_next_lstm.{t}", l + 1), format!("y_lstm.{t}_l{l}")));
        }
    }
    let shapes: Vec<Vec<usize>> = renames
        .iter()
        .map(|(_, new)| g.param(new).map(|p| p.shape().to_vec()))
        .collect::<std::result::Result<_, _>>()?;
    let nodes: Vec<(&str, Vec<ParamShape>)> = renames
        .iter()
        .zip(shapes)
        .map(|((old, _), shape)| {
            let (node, tensor) = old.split_once('.').unwrap_or((old, ""));
            (
                node,
                vec![ParamShape {
                    name: tensor.to_string().into(),
                    shape,
                }],
            )
        })
        .collect();
    let mut old = ParamStore::new("char_rnn format 2", &nodes);
    old.load(path)?;
    for (from, to) in &renames {
        let value = old.param(from)?.to_owned();
        g.param_mut(to)?.assign(&value);
    }
    Ok(())
}
