//! The seed notebook ("使用Torch来构建RNN网络", Torch7 + nngraph), replayed
//! section by section with `graph!`.
//!
//! Run: `cargo run --release --example seed_tour`

use nngraph::prelude::*;
use nngraph::rand::RngExt;

graph! {
    /// In[3]: two inputs to one output.
    pub TwoToOne(x1: [3], x2: [2]) -> (out) {
        l1  = Linear(3, 2)(x1);
        l2  = Linear(2, 2)(x2);
        add = CAdd()(l1, l2);
        out = Linear(2, 1)(Tanh()(add));
    }

    /// In[6]: the same graph with a second output, `add`.
    pub TwoToTwo(x1: [3], x2: [2]) -> (out, add) {
        l1  = Linear(3, 2)(x1);
        l2  = Linear(2, 2)(x2);
        add = CAdd()(l1, l2);
        out = Linear(2, 1)(Tanh()(add));
    }

    /// In[10]: the RNN cell; `new_h` feeds `h` at the next step.
    #[recurrent(h = new_h)]
    pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        y     = Sigmoid()(Linear(4, 1)(new_h));
    }
}

fn section(n: &str, english: &str, chinese: &str) {
    println!("\n== {n}. {english} ({chinese}) ==");
}

fn show(name: &str, a: impl std::fmt::Display) {
    let text = format!("{a:.4}");
    let mut lines = text.lines();
    println!("{name} = {}", lines.next().unwrap_or(""));
    for line in lines {
        println!("{:width$}{line}", "", width = name.len() + 3);
    }
}

/// torch.rand: uniform in [0, 1).
fn rand_array(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f64>())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(2016);
    println!("nngraph for Rust: the seed notebook, section by section");

    section("1", "Multi-input to single output", "构造多输入到单一输出");
    let model = TwoToOne::<f64>::new(&mut rng);
    let (x1, x2) = (array![[0.1, 1.5, -1.0]], array![[-1.0, 0.0]]);
    let mut tape = model.tape();
    let y = model.forward(&mut tape, &x1, &x2)?.out.to_owned();
    show("model:forward({x1, x2})", &y);

    section("2", "The same number, layer by layer", "手动检验一下");
    // Each layer by itself, on the graph's own parameters.
    let layers = model.layers();
    let run = |layer: &dyn Layer<f64>, node: &str, input: ArrayView2<f64>, width: usize| {
        let params: Vec<f64> = model
            .param_specs()
            .iter()
            .filter(|s| s.name.starts_with(&format!("{node}.")))
            .flat_map(|s| model.params()[s.range()].to_vec())
            .collect();
        let mut out = Array2::zeros((1, width));
        let mut state = Array2::zeros((0, 0));
        let cx = Forward {
            params: &params,
            inputs: &[Input::Values(input)],
            training: false,
            dropout: None,
            seed: 0,
            state: &mut state,
        };
        layer.forward(cx, out.view_mut()).map(|()| out)
    };
    let l1 = run(&layers.l1, "l1", x1.view(), 2)?;
    let l2 = run(&layers.l2, "l2", x2.view(), 2)?;
    let yp = (&l1 + &l2).mapv(f64::tanh);
    let by_hand = run(&layers.out, "out", yp.view(), 1)?;
    show("linearLayer3:forward(tanh(l1 + l2))", &by_hand);
    assert_eq!(by_hand, y, "the graph and the layers disagree");
    println!("identical to the graph's output: {}", by_hand == y);

    section("3", "Multi-input to multi-output", "多输入到多输出");
    let model = TwoToTwo::<f64>::new(&mut rng);
    let mut tape = model.tape();
    let outs = model.forward(&mut tape, &x1, &x2)?;
    show("y[1] (out)", outs.out);
    show("y[2] (add)", outs.add);

    section("4", "Recurrence by feeding an output back", "构造递归结构");
    // The second output (`add`, width 2) is fed back as the second input.
    let h0 = rand_array(&mut rng, 1, 2);
    let x_t0 = rand_array(&mut rng, 1, 3);
    let out_t1 = model.forward(&mut tape, &x_t0, &h0)?;
    show("out_t1[1]", out_t1.out);
    let h1 = out_t1.add.to_owned();
    let x_t1 = rand_array(&mut rng, 1, 3);
    let out_t2 = model.forward(&mut tape, &x_t1, &h1)?;
    show("out_t2[1]", out_t2.out);

    section(
        "5.1",
        "A group of 5 steps sharing W and b",
        "首先构造一个共享W（包括b）的神经网络组",
    );
    let mut cell = RnnCell::<f64>::new(&mut rng);
    let steps = 5;
    // One tape records a pass over the whole sequence: every step runs the
    // same graph, so the weights are shared by construction.
    let mut seq = cell.tape();
    println!(
        "one parameter set for all {steps} steps: {} numbers",
        cell.params().len()
    );
    show("sharedPar[1] (x2h.weight)", cell.param("x2h.weight")?);
    let h0 = rand_array(&mut rng, 1, 4);
    let xs = Array3::from_shape_fn((steps, 1, 2), |_| rng.random::<f64>());
    let before = cell.forward_seq(&mut seq, &xs, &h0)?.y.to_owned();
    let saved = cell.param("x2h.weight")?[[0, 1]];
    cell.param_mut("x2h.weight")?[[0, 1]] = -1.0;
    show(
        "after sharedPar[1][{1,2}] = -1, every step sees",
        cell.param("x2h.weight")?,
    );
    let after = cell.forward_seq(&mut seq, &xs, &h0)?.y;
    for t in 0..steps {
        println!(
            "  step {}: y = {:.4} (was {:.4})",
            t + 1,
            after[[t, 0, 0]],
            before[[t, 0, 0]]
        );
    }
    cell.param_mut("x2h.weight")?[[0, 1]] = saved;

    section("5.2", "Forward over the sequence", "前向计算");
    // The notebook's loss: MSE against 1 at every step, summed.
    let target = array![[1.0]];
    let mse_on_y = |_t: usize, o: usize, y: ArrayView2<'_, f64>, g: Option<ArrayViewMut2<'_, f64>>| {
        if o != 0 {
            return Ok(0.0);
        }
        if let Some(g) = g {
            Mse::new().backward(&y, &target, g)?;
        }
        Mse::new().forward(&y, &target)
    };
    // Σ_t mse_on_y over a pass's outputs, and its gradient into `dy`.
    let sum_over_steps =
        |ys: ArrayView3<'_, f64>, mut dy: Option<&mut Array3<f64>>| -> nngraph::Result<f64> {
            let mut total = 0.0;
            for t in 0..ys.dim().0 {
                let grad = dy.as_deref_mut().map(|d| d.index_axis_mut(Axis(0), t));
                total += mse_on_y(t, 0, ys.index_axis(Axis(0), t), grad)?;
            }
            Ok(total)
        };
    cell.evaluate();
    let loss = sum_over_steps(cell.forward_seq(&mut seq, &xs, &h0)?.y, None)?;
    println!("forwardRNN() = {loss:.13}");

    section(
        "5.3",
        "Backpropagation through time",
        "通过逐层BP计算实现BPTT算法",
    );
    cell.training();
    cell.zero_grad();
    let ys = cell.forward_seq(&mut seq, &xs, &h0)?.y.to_owned();
    let mut dy = Array3::zeros(ys.dim());
    sum_over_steps(ys.view(), Some(&mut dy))?;
    // No loss on the state output: its gradient is `Absent` (zero).
    let grads = cell.backward_seq(&mut seq, &dy, &Absent)?;
    show("dL/d h0", grads.h);
    show("dL/d x2h.weight", cell.grad("x2h.weight")?);

    section("5.4", "Numerical check of a gradient", "用Number Checker进行校验");
    let eps = 1e-4;
    let mut loss_at = |cell: &mut RnnCell<f64>, delta: f64| -> nngraph::Result<f64> {
        cell.param_mut("x2h.weight")?[[0, 0]] += delta;
        let ys = cell.forward_seq(&mut seq, &xs, &h0)?.y.to_owned();
        cell.param_mut("x2h.weight")?[[0, 0]] -= delta;
        sum_over_steps(ys.view(), None)
    };
    let (right, left) = (loss_at(&mut cell, eps)?, loss_at(&mut cell, -eps)?);
    let dw11 = (right - left) / (2.0 * eps);
    println!("lossRight = {right:.13}  lossLeft = {left:.13}  dw11 = {dw11:.12}");
    println!(
        "numeric {dw11:.12} vs analytic {:.12} (BPTT)",
        cell.grad("x2h.weight")?[[0, 0]]
    );
    println!("\nEvery parameter, the initial state and every input, by central differences:");
    let report = GradCheck::new().check_graph(
        &mut cell,
        &[Feed::Seq(xs.view()), Feed::Values(h0.view())],
        mse_on_y,
    )?;
    print!("{report}");
    assert!(report.passed());

    section("6", "Pictures of the three graphs", "网络结构图");
    // Drawn here, no graphviz needed. `-- --docs` also refreshes the
    // README's picture.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/pictures");
    std::fs::create_dir_all(&dir)?;
    let pictures = [
        ("two_to_one.svg", TwoToOne::<f64>::zeros().svg()),
        ("two_to_two.svg", TwoToTwo::<f64>::zeros().svg()),
        ("rnn_cell.svg", cell.svg()),
    ];
    for (name, svg) in &pictures {
        std::fs::write(dir.join(name), svg)?;
        println!("{}", dir.join(name).display());
    }
    if std::env::args().any(|a| a == "--docs") {
        std::fs::write(root.join("docs/rnn_cell.svg"), &pictures[2].1)?;
        println!("{}", root.join("docs/rnn_cell.svg").display());
    }
    Ok(())
}
