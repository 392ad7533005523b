//! The char_rnn tool's train → checkpoint → resume → sample path, on a
//! tiny text and a tiny model.

use char_rnn as tool;

use std::path::{Path, PathBuf};
use tool::{SampleOptions, TrainOptions};

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
        layers: 2,
        hidden: 16,
        seq: 10,
        batch: 4,
        lr: 1e-2,
        dropout,
        grad_clip: 5.0,
        iters,
        checkpoint_every: 10,
        val_chars: 1000,
        out,
        seed: 3,
        progress: false,
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
    // A temperature of zero or less is an error.
    assert!(tool::sample(&SampleOptions {
        temperature: 0.0,
        ..sample_options
    })
    .is_err());
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
        options(data, out.clone(), 20, 0.0),
        Some(&out.join("ckpt_000010")),
    );
    assert!(err.is_err());
    assert!(!out.join("ckpt_000020").exists());
    assert_eq!(
        std::fs::read(out.join("ckpt_000010/model.safetensors")).unwrap(),
        before
    );
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
