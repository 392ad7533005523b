//! char-rnn: train a multi-layer LSTM character model and sample from it,
//! as Karpathy's `train.lua` and `sample.lua`.
//!
//! ```sh
//! cargo run --release -p char_rnn -- train                 # Tiny Shakespeare, 2 layers of 128
//! cargo run --release -p char_rnn -- train --resume target/char-rnn/ckpt_000500 --iters 1000
//! cargo run --release -p char_rnn -- sample --checkpoint target/char-rnn/ckpt_001000 --prime "ROMEO:"
//! ```
//!
//! `train` splits the text 90/5/5 into training, validation and test text,
//! reports the validation loss and writes a checkpoint every
//! `--checkpoint-every` iterations (atomically, in `--out`), and plots the
//! training and validation losses to `--out/loss.svg`. `--resume` continues
//! a run exactly where its checkpoint left it (with the options given that
//! a run can change, such as the learning rate). The learning rate decays
//! as char-rnn's does (`--lr-decay`, `--lr-decay-after`). `--help` lists
//! every option; paths are relative to the working directory.

use char_rnn as tool;

use clap::{value_parser, Arg, ArgMatches, Command};
use std::path::PathBuf;
use std::process::ExitCode;

fn cli() -> Command {
    // Relative to the working directory: run from the repository's root.
    let default_data = "examples/data/tinyshakespeare.txt";
    let default_out = "target/char-rnn";
    let number = |name: &'static str, default: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("N")
            .default_value(default)
            .value_parser(value_parser!(usize))
            .help(help)
    };
    let float = |name: &'static str, default: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("X")
            .default_value(default)
            .value_parser(value_parser!(f64))
            .help(help)
    };
    Command::new("char_rnn")
        .about("Train a character-level LSTM language model, and sample from it")
        .subcommand_required(true)
        .subcommand(
            Command::new("train")
                .about("Train (or resume training) on a text file")
                .arg(
                    Arg::new("data")
                        .long("data")
                        .value_name("FILE")
                        .default_value(default_data)
                        .help("The text to learn"),
                )
                .arg(
                    Arg::new("model")
                        .long("model")
                        .value_name("KIND")
                        .default_value("lstm")
                        .value_parser(["lstm", "gru", "rnn"])
                        .help("The recurrent layers: lstm, gru or rnn"),
                )
                .arg(number("layers", "2", "Recurrent layers, 1 or more"))
                .arg(number("hidden", "128", "Units per layer"))
                .arg(number("seq", "50", "Characters per sequence (BPTT length)"))
                .arg(number("batch", "50", "Sequences per batch"))
                .arg(float("lr", "2e-3", "Adam's learning rate"))
                .arg(float(
                    "lr-decay",
                    "0.97",
                    "Multiplies the learning rate at the end of each pass over the text, after --lr-decay-after",
                ))
                .arg(number(
                    "lr-decay-after",
                    "10",
                    "Passes over the text before the learning rate decays",
                ))
                .arg(float("dropout", "0", "Dropout between layers, in [0, 1)"))
                .arg(float("grad-clip", "5", "Clip each gradient to [-c, c]"))
                .arg(number(
                    "iters",
                    "1000",
                    "Iterations in all (a resumed run counts those done)",
                ))
                .arg(number(
                    "checkpoint-every",
                    "100",
                    "Validation loss and a checkpoint every N iterations",
                ))
                .arg(number(
                    "val-chars",
                    "20000",
                    "Characters of validation text per validation loss",
                ))
                .arg(
                    Arg::new("out")
                        .long("out")
                        .value_name("DIR")
                        .default_value(default_out)
                        .help("Where checkpoints and the loss plot go"),
                )
                .arg(
                    Arg::new("seed")
                        .long("seed")
                        .value_name("N")
                        .default_value("42")
                        .value_parser(value_parser!(u64))
                        .help("Seed of the initial weights and the dropout masks"),
                )
                .arg(
                    Arg::new("resume")
                        .long("resume")
                        .value_name("CKPT")
                        .help(
                            "A checkpoint to continue from, or a --out folder (its latest): the run keeps \
                             its options, but takes those given here that can change (the learning \
                             rate, ...); changing the model's sizes or the batch is an error",
                        ),
                )
                .arg(
                    Arg::new("quiet")
                        .long("quiet")
                        .action(clap::ArgAction::SetTrue)
                        .help("No progress bar"),
                ),
        )
        .subcommand(
            Command::new("sample")
                .about("Generate text from a checkpoint")
                .arg(
                    Arg::new("checkpoint")
                        .long("checkpoint")
                        .value_name("CKPT")
                        .required(true)
                        .help("A checkpoint written by train, or its --out folder (the latest)"),
                )
                .arg(float(
                    "temperature",
                    "0.8",
                    "Below 1: safer choices; above 1: more varied; 0: always the likeliest",
                ))
                .arg(
                    Arg::new("prime")
                        .long("prime")
                        .value_name("TEXT")
                        .default_value("")
                        .help("Text to start from"),
                )
                .arg(number("length", "500", "Characters to generate"))
                .arg(
                    Arg::new("seed")
                        .long("seed")
                        .value_name("N")
                        .default_value("1")
                        .value_parser(value_parser!(u64))
                        .help("Seed of the sampling"),
                ),
        )
}

fn train(m: &ArgMatches) -> tool::Result<()> {
    let n = |k: &str| *m.get_one::<usize>(k).expect("has a default");
    let f = |k: &str| *m.get_one::<f64>(k).expect("has a default");
    let path = |k: &str| PathBuf::from(m.get_one::<String>(k).expect("has a default"));
    let options = tool::TrainOptions {
        data: path("data"),
        model: m.get_one::<String>("model").expect("has a default").parse()?,
        layers: n("layers"),
        hidden: n("hidden"),
        seq: n("seq"),
        batch: n("batch"),
        lr: f("lr"),
        lr_decay: f("lr-decay"),
        lr_decay_after: n("lr-decay-after"),
        dropout: f("dropout"),
        grad_clip: f("grad-clip"),
        iters: n("iters"),
        checkpoint_every: n("checkpoint-every"),
        val_chars: n("val-chars"),
        out: path("out"),
        seed: *m.get_one::<u64>("seed").expect("has a default"),
        progress: !m.get_flag("quiet"),
        given: m
            .ids()
            .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect(),
    };
    let resume = m.get_one::<String>("resume").map(PathBuf::from);
    let report = tool::train(options, resume.as_deref())?;
    println!(
        "{} iterations ({:.1} per second); training loss {:.3}, validation loss {:.3}, test loss {:.3}",
        report.iterations,
        report.iterations_per_second,
        report.final_train_loss,
        report.val_losses.last().map_or(f64::NAN, |v| v.1),
        report.test_loss
    );
    println!("last checkpoint: {}", report.last_checkpoint.display());
    Ok(())
}

fn sample(m: &ArgMatches) -> tool::Result<()> {
    let options = tool::SampleOptions {
        checkpoint: PathBuf::from(m.get_one::<String>("checkpoint").expect("required")),
        temperature: *m.get_one::<f64>("temperature").expect("has a default"),
        prime: m.get_one::<String>("prime").cloned().unwrap_or_default(),
        length: *m.get_one::<usize>("length").expect("has a default"),
        seed: *m.get_one::<u64>("seed").expect("has a default"),
    };
    println!("{}", tool::sample(&options)?);
    Ok(())
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let result = match matches.subcommand() {
        Some(("train", m)) => train(m),
        Some(("sample", m)) => sample(m),
        _ => unreachable!("clap requires a subcommand"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
