//! The char_rnn tool's train → checkpoint → resume → sample path, on a
//! tiny text and a tiny model.

use char_rnn as tool;

use std::path::{Path, PathBuf};
use tool::{ModelKind, SampleOptions, TrainOptions};

/// A scratch directory for one test, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("char_rnn_tool")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first 4000 characters of Tiny Shakespeare.
fn tiny_text(dir: &Path) -> PathBuf {
    let text: String = include_str!("../../data/tinyshakespeare.txt")
        .chars()
        .take(4000)
        .collect();
    let path = dir.join("tiny.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn options(data: PathBuf, out: PathBuf, iters: usize, dropout: f64) -> TrainOptions {
    TrainOptions {
        data,
        model: ModelKind::Lstm,
        layers: 2,
        hidden: 16,
        seq: 10,
        batch: 4,
        lr: 1e-2,
        lr_decay: 0.97,
        lr_decay_after: 10,
        dropout,
        grad_clip: 5.0,
        iters,
        checkpoint_every: 10,
        val_chars: 1000,
        out,
        seed: 3,
        progress: false,
        given: Vec::new(),
    }
}

#[test]
fn train_checkpoint_resume_and_sample() {
    let dir = scratch("path");
    let data = tiny_text(&dir);

    // 30 iterations straight, with dropout between the layers.
    let straight = tool::train(options(data.clone(), dir.join("straight"), 30, 0.25), None).unwrap();
    assert_eq!(straight.iterations, 30);
    assert_eq!(
        straight.val_losses.iter().map(|v| v.0).collect::<Vec<_>>(),
        [10, 20, 30]
    );
    // It learns: below the uniform guess over the vocabulary, and falling.
    let vocab = tool::Corpus::read(&data).unwrap().vocab.len() as f64;
    assert!(
        straight.val_losses[2].1 < vocab.ln() - 0.5,
        "{:?}",
        straight.val_losses
    );
    assert!(straight.val_losses[2].1 < straight.val_losses[0].1);
    assert!(straight.test_loss.is_finite());
    for k in [10, 20, 30] {
        let ckpt = dir.join(format!("straight/ckpt_{k:06}"));
        for file in [
            "model.safetensors",
            "adam_m.safetensors",
            "adam_v.safetensors",
            "run.json",
        ] {
            assert!(ckpt.join(file).is_file(), "{}", ckpt.join(file).display());
        }
    }
    // No temporary directory is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("straight"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // The loss plot: SVG with axes labels and both curves' legends.
    let svg = std::fs::read_to_string(dir.join("straight/loss.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for label in ["iteration", "nats per character", "training", "validation"] {
        assert!(texts.contains(&label), "{label} in {texts:?}");
    }

    // Resumed from the first checkpoint, the run ends exactly where the
    // straight one did (weights, bit for bit), options taken from the
    // checkpoint.
    let mut resume_options = options(PathBuf::from("ignored"), dir.join("resumed"), 30, 0.0);
    resume_options.layers = 1;
    let resumed = tool::train(resume_options, Some(&dir.join("straight/ckpt_000010"))).unwrap();
    assert_eq!(resumed.iterations, 30);
    assert_eq!(resumed.val_losses, straight.val_losses);
    let a = tool::checkpoint_params(&dir.join("straight/ckpt_000030")).unwrap();
    let b = tool::checkpoint_params(&dir.join("resumed/ckpt_000030")).unwrap();
    assert_eq!(a, b);

    // Sampling from the checkpoint: the prime, then `length` characters of
    // the text's vocabulary; the same seed gives the same text.
    let corpus = tool::Corpus::read(&data).unwrap();
    let sample_options = SampleOptions {
        checkpoint: dir.join("resumed/ckpt_000030"),
        temperature: 0.8,
        prime: "First".into(),
        length: 60,
        seed: 5,
    };
    let text = tool::sample(&sample_options).unwrap();
    assert!(text.starts_with("First"));
    assert_eq!(text.chars().count(), 65);
    assert!(text.chars().all(|c| corpus.vocab.contains(&c)));
    assert_eq!(tool::sample(&sample_options).unwrap(), text);
    // A prime with characters the model never saw is an error naming them.
    let err = tool::sample(&SampleOptions {
        prime: "Zq~".into(),
        ..sample_options.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains('~'), "{err}");
    // A temperature below zero is an error; zero takes the likeliest
    // character every time, so the seed does not matter.
    assert!(tool::sample(&SampleOptions {
        temperature: -0.5,
        ..sample_options.clone()
    })
    .is_err());
    let greedy = |seed| {
        tool::sample(&SampleOptions {
            temperature: 0.0,
            seed,
            ..sample_options.clone()
        })
        .unwrap()
    };
    assert_eq!(greedy(1), greedy(2));
    // The run's folder means its latest checkpoint.
    let from_folder = tool::sample(&SampleOptions {
        checkpoint: dir.join("resumed"),
        ..sample_options.clone()
    })
    .unwrap();
    assert_eq!(from_folder, text);
    let err = tool::sample(&SampleOptions {
        checkpoint: dir.clone(),
        ..sample_options
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("is no checkpoint (no run.json) and holds none"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_that_cannot_be_written_leaves_none_and_the_earlier_ones_intact() {
    let dir = scratch("failed_write");
    let data = tiny_text(&dir);
    let out = dir.join("run");
    tool::train(options(data.clone(), out.clone(), 10, 0.0), None).unwrap();
    let before = std::fs::read(out.join("ckpt_000010/model.safetensors")).unwrap();
    // A file where the next checkpoint's temporary directory goes: the
    // write fails.
    std::fs::write(out.join(".ckpt_000020.tmp"), b"in the way").unwrap();
    let err = tool::train(
        options(data.clone(), out.clone(), 20, 0.0),
        Some(&out.join("ckpt_000010")),
    );
    assert!(err.is_err());
    assert!(!out.join("ckpt_000020").exists());
    assert_eq!(
        std::fs::read(out.join("ckpt_000010/model.safetensors")).unwrap(),
        before
    );
    std::fs::remove_file(out.join(".ckpt_000020.tmp")).unwrap();
    // A write that fails once its temporary folder is full (a file where the
    // checkpoint goes): the temporary folder is removed.
    std::fs::write(out.join("ckpt_000020"), b"not a folder").unwrap();
    let err = tool::train(
        options(data, out.clone(), 20, 0.0),
        Some(&out.join("ckpt_000010")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ckpt_000020"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn options_that_cannot_make_a_run_are_errors_naming_the_option() {
    let dir = scratch("bad_options");
    let data = tiny_text(&dir);
    let base = || options(data.clone(), dir.join("out"), 2, 0.0);
    type Spoil = fn(&mut TrainOptions);
    let cases: [(&str, Spoil); 6] = [
        ("--seq", |o| o.seq = 0),
        ("--batch", |o| o.batch = 0),
        ("--hidden", |o| o.hidden = 0),
        ("--lr", |o| o.lr = f64::NAN),
        ("--grad-clip", |o| o.grad_clip = 0.0),
        ("--dropout", |o| o.dropout = 1.0),
    ];
    for (name, spoil) in cases {
        let mut o = base();
        spoil(&mut o);
        let err = tool::train(o, None).unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    // Nothing was written.
    assert!(!dir.join("out").exists());
}

/// A checkpoint of a 20-iteration run on the tiny text, in its own folder.
fn run20(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let data = tiny_text(&dir);
    tool::train(options(data.clone(), dir.join("run"), 20, 0.0), None).unwrap();
    (dir, data)
}

#[test]
fn a_damaged_checkpoint_is_an_error_naming_the_checkpoint_and_the_file() {
    let (dir, data) = run20("damaged");
    let ckpt = dir.join("run/ckpt_000010");
    let copy = |name: &str| {
        let to = dir.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&ckpt).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        to
    };
    type Damage = fn(&Path);
    let cases: [(&str, &str, Damage); 3] = [
        ("truncated", "run.json", |c| {
            let text = std::fs::read(c.join("run.json")).unwrap();
            std::fs::write(c.join("run.json"), &text[..text.len() / 2]).unwrap();
        }),
        ("flipped", "carry.safetensors", |c| {
            let mut bytes = std::fs::read(c.join("carry.safetensors")).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(c.join("carry.safetensors"), bytes).unwrap();
        }),
        ("missing", "model.safetensors", |c| {
            std::fs::remove_file(c.join("model.safetensors")).unwrap()
        }),
    ];
    for (name, file, damage) in cases {
        let c = copy(name);
        damage(&c);
        let err = tool::train(options(data.clone(), dir.join("out"), 30, 0.0), Some(&c))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("checkpoint {}: {file}: ", c.display())),
            "{err}"
        );
    }
}

#[test]
fn a_resumed_run_takes_the_options_it_can_and_refuses_the_sizes_by_name() {
    let (dir, data) = run20("resume_options");
    let ckpt = dir.join("run/ckpt_000010");
    // A new learning rate is taken, and saved with the next checkpoints.
    let mut o = options(data.clone(), dir.join("faster"), 20, 0.0);
    o.lr = 0.05;
    o.given = vec!["lr".into()];
    tool::train(o, Some(&ckpt)).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("faster/ckpt_000020/run.json")).unwrap())
            .unwrap();
    assert_eq!(saved["options"]["lr"], 0.05);
    // Not given, the checkpoint's is kept (the default of this command is
    // not taken for a choice).
    let mut o = options(data.clone(), dir.join("kept"), 20, 0.0);
    o.lr = 0.05;
    tool::train(o, Some(&ckpt)).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("kept/ckpt_000020/run.json")).unwrap())
            .unwrap();
    assert_eq!(saved["options"]["lr"], 1e-2);
    // The model's sizes and the batch cannot change: an error naming them.
    for (flag, spoil) in [
        ("--hidden 32", (|o| o.hidden = 32) as fn(&mut TrainOptions)),
        ("--layers 3", |o| o.layers = 3),
        ("--batch 8", |o| o.batch = 8),
    ] {
        let mut o = options(data.clone(), dir.join("refused"), 20, 0.0);
        spoil(&mut o);
        o.given = vec![flag[2..flag.find(' ').unwrap()].to_string()];
        let err = tool::train(o, Some(&ckpt)).unwrap_err().to_string();
        assert!(err.starts_with(flag) && err.contains("start a new run"), "{err}");
    }
    // Given with the checkpoint's own value, a size is no change.
    let mut o = options(data.clone(), dir.join("same"), 20, 0.0);
    o.given = vec!["hidden".into()];
    tool::train(o, Some(&ckpt)).unwrap();
    // Resuming a run that is done is an error, not a run of nothing.
    let err = tool::train(options(data, dir.join("done"), 20, 0.0), Some(&dir.join("run")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is at iteration 20, and --iters is 20: nothing to train"),
        "{err}"
    );
}

#[test]
fn an_empty_text_is_an_error_naming_it() {
    let dir = scratch("empty");
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    let err = tool::train(options(dir.join("empty.txt"), dir.join("out"), 2, 0.0), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("{}: the text is empty", dir.join("empty.txt").display())
    );
}

#[test]
fn the_learning_rate_decays_as_char_rnns_and_a_resumed_run_follows_it() {
    let mut o = options(PathBuf::new(), PathBuf::new(), 0, 0.0);
    (o.lr, o.lr_decay, o.lr_decay_after) = (1.0, 0.5, 2);
    // 10 iterations per pass: the rate halves at the end of the second pass,
    // and of every pass after it.
    let rates: Vec<f64> = [0, 9, 10, 19, 20, 29, 30, 40]
        .iter()
        .map(|&i| o.learning_rate(i, 10))
        .collect();
    assert_eq!(rates, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.125]);
    o.lr_decay = 1.0;
    assert_eq!(o.learning_rate(1000, 10), 1.0);

    // Across the end of a pass (89 iterations on the tiny text), a resumed
    // run ends where the straight one does.
    let dir = scratch("decay");
    let data = tiny_text(&dir);
    let run = |out: &str, iters: usize| {
        let mut o = options(data.clone(), dir.join(out), iters, 0.0);
        (o.lr_decay, o.lr_decay_after, o.checkpoint_every) = (0.5, 1, 50);
        o
    };
    tool::train(run("straight", 100), None).unwrap();
    tool::train(run("first", 50), None).unwrap();
    tool::train(run("resumed", 100), Some(&dir.join("first/ckpt_000050"))).unwrap();
    let a = tool::checkpoint_params(&dir.join("straight/ckpt_000100")).unwrap();
    let b = tool::checkpoint_params(&dir.join("resumed/ckpt_000100")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn carried_states_are_a_tensor_file_and_a_newer_format_is_refused() {
    let (dir, data) = run20("format");
    let ckpt = dir.join("run/ckpt_000010");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["format"], tool::FORMAT);
    assert!(meta.get("carry").is_none());
    assert!(ckpt.join("carry.safetensors").is_file());
    assert!(std::fs::metadata(ckpt.join("run.json")).unwrap().len() < 4000);
    // A format from a newer char_rnn is refused, naming it.
    let newer = dir.join("newer_ckpt");
    copy_dir(&ckpt, &newer);
    let mut meta = meta;
    meta["format"] = serde_json::json!(tool::FORMAT + 1);
    std::fs::write(newer.join("run.json"), serde_json::to_string(&meta).unwrap()).unwrap();
    let err = tool::train(options(data, dir.join("newer"), 20, 0.0), Some(&newer))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("run.json is of format {}", tool::FORMAT + 1)),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The tensors of a safetensors file, as f32s by name.
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    names
        .iter()
        .map(|n| {
            let data = file.tensor(n).unwrap().data().to_vec();
            let values = data
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (n.to_string(), values)
        })
        .collect()
}

/// `tests/format2/`: a checkpoint that char_rnn wrote before one model
/// covered every depth (format 2: a graph per depth, `h1_next_lstm.weight_ih`,
/// a state per layer), 2 LSTM layers of 16 on `tiny.txt`, 10 iterations;
/// and the same as format 1 wrote it (the states in run.json). Both resume
/// under the new names and grouped states, to the same weights.
#[test]
fn checkpoints_of_formats_1_and_2_resume() {
    let dir = scratch("old_formats");
    let data = tiny_text(&dir);
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/format2/ckpt_000010");
    let v2 = dir.join("v2");
    copy_dir(&fixture, &v2);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(v2.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["format"], 2);
    // Format 1: no format, the states in run.json as numbers.
    let v1 = dir.join("v1");
    copy_dir(&fixture, &v1);
    std::fs::remove_file(v1.join("carry.safetensors")).unwrap();
    let carry: Vec<Vec<f32>> = tensors(&fixture.join("carry.safetensors"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut meta1 = meta.clone();
    meta1.as_object_mut().unwrap().remove("format");
    meta1["carry"] = serde_json::json!(carry);
    std::fs::write(v1.join("run.json"), serde_json::to_string(&meta1).unwrap()).unwrap();

    // The weights are the old file's, renamed: the same numbers.
    let mut old: Vec<f32> = tensors(&fixture.join("model.safetensors"))
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect();
    let mut migrated = tool::checkpoint_params(&v2).unwrap();
    old.sort_by(f32::total_cmp);
    migrated.sort_by(f32::total_cmp);
    assert_eq!(old, migrated);

    // The text is given: the old run read it elsewhere.
    let resume = |out: &str, from: &Path| {
        let mut o = options(data.clone(), dir.join(out), 20, 0.0);
        o.given = vec!["data".into()];
        tool::train(o, Some(from)).unwrap()
    };
    let from_v2 = resume("from_v2", &v2);
    resume("from_v1", &v1);
    let a = tool::checkpoint_params(&dir.join("from_v1/ckpt_000020")).unwrap();
    let b = tool::checkpoint_params(&dir.join("from_v2/ckpt_000020")).unwrap();
    assert_eq!(a, b);
    // It goes on learning where the old run stopped: its history is kept,
    // and the validation loss at 20 is below the old run's at 10.
    let old_val = meta["val_losses"][0][1].as_f64().unwrap();
    assert_eq!(from_v2.val_losses[0], (10, old_val));
    assert!(
        from_v2.val_losses[1].1 < old_val - 0.05,
        "{:?}",
        from_v2.val_losses
    );
}

#[test]
fn the_default_paths_are_relative_to_the_working_directory() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_char_rnn"))
        .args(["train", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("[default: examples/data/tinyshakespeare.txt]"),
        "{help}"
    );
    assert!(help.contains("[default: target/char-rnn]"), "{help}");
    assert!(help.contains("--lr-decay"), "{help}");
}

#[test]
fn every_depth_from_1_to_4_and_every_kind_of_layer_trains() {
    let dir = scratch("depths");
    let data = tiny_text(&dir);
    let vocab = tool::Corpus::read(&data).unwrap().vocab.len() as f64;
    let runs = (1..=4)
        .map(|layers| (ModelKind::Lstm, layers))
        .chain([(ModelKind::Gru, 4), (ModelKind::Rnn, 2)]);
    for (model, layers) in runs {
        let mut o = options(data.clone(), dir.join(format!("{model}{layers}")), 24, 0.1);
        (o.model, o.layers, o.checkpoint_every, o.lr) = (model, layers, 24, 2e-2);
        let report = tool::train(o, None).unwrap();
        let losses = &report.train_losses;
        assert_eq!(losses.len(), 24);
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "{model} x {layers}: {losses:?}"
        );
        // From about the uniform guess, down.
        assert!(
            (losses[0] - vocab.ln()).abs() < 0.5,
            "{model} x {layers}: {losses:?}"
        );
        let (start, end) = (losses[..4].iter().sum::<f64>(), losses[20..].iter().sum::<f64>());
        assert!(end < start - 0.4, "{model} x {layers}: {losses:?}");
        // The checkpoint says what it is, and samples.
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.last_checkpoint.join("run.json")).unwrap())
                .unwrap();
        assert_eq!(meta["options"]["model"], model.to_string());
        assert_eq!(meta["options"]["layers"], layers);
        let text = tool::sample(&SampleOptions {
            checkpoint: report.last_checkpoint,
            temperature: 1.0,
            prime: "the ".into(),
            length: 20,
            seed: 1,
        })
        .unwrap();
        assert_eq!(text.chars().count(), 24);
    }
}
