//! `Graph::to_pytorch`: the module is valid Python, and the state dict its
//! classes declare (read from the Python syntax tree by `python3`, without
//! torch) has exactly the graph's parameter names, in the graph's order.
//! That the numbers agree is checked where torch is installed, by
//! `scripts/compare_pytorch_export.py` (see the README).

use nngraph::cells::{GruCell, LstmCell};
use nngraph::prelude::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Reads the module from stdin and prints, as JSON, the state-dict names of
/// the class `build()` returns: `nn.Linear` gives `weight`, `bias`;
/// `nn.Embedding` gives `weight`; `nn.Parameter` its attribute path
/// (`self.a.b = ..` is `a.b`); a class of the module its own names under
/// the attribute.
const STATE_DICT_NAMES: &str = r#"
import ast, json, sys
tree = ast.parse(sys.stdin.read())
classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}

def names(cls):
    out = []
    init = next(f for f in classes[cls].body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    for st in init.body:
        if isinstance(st, ast.Assign) and isinstance(st.targets[0], ast.Attribute):
            target, path = st.targets[0], []
            while isinstance(target, ast.Attribute):
                path.insert(0, target.attr)
                target = target.value
            attr, call = ".".join(path), st.value
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and getattr(st.value.func, "id", None) == "setattr":
            attr, call = st.value.args[1].value, st.value.args[2]
        else:
            continue
        if not isinstance(call, ast.Call):
            continue
        f = call.func
        kind = f.attr if isinstance(f, ast.Attribute) else f.id
        if kind == "Linear":
            out += [attr + ".weight", attr + ".bias"]
        elif kind == "Embedding":
            out.append(attr + ".weight")
        elif kind == "Parameter":
            out.append(attr)
        elif kind in classes:
            out += [attr + "." + n for n in names(kind)]
    return out

build = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "build")
print(json.dumps(names(build.body[-1].value.func.id)))
"#;

fn python(script: &str, stdin: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (CPython 3) is needed by this test");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed:\n{}\n--- module ---\n{stdin}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_same_names<F: Float, G: Graph<F>>(g: &G) {
    let module = g.to_pytorch();
    let theirs: Vec<String> = serde_json::from_str(&python(STATE_DICT_NAMES, &module)).unwrap();
    let ours: Vec<&str> = g.param_specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(theirs, ours, "\n--- module ---\n{module}");
}

graph! {
    #[recurrent(h = new_h)]
    pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        y     = Sigmoid()(Linear(4, 1)(new_h));
    }

    #[recurrent(h = h1, c = c1)]
    pub CharStep[vocab, hidden](x: usize, h: [hidden], c: [hidden], target: usize) -> (loss, h1, c1) {
        (h1, c1) = LstmCell<8, 16>(Embedding(vocab, 8)(x), h, c);
        (left, right) = Split(2)(h1);
        #[params(weight = out_weight)]
        logits = Linear(hidden, vocab)(Concat()(right, left));
        loss = CrossEntropy()(logits, target);
    }

    /// Nodes named as Python keywords and as the names the module uses.
    pub Keywords<const W: usize>(x: [W]) -> (lambda) {
        torch = Linear(W, W)(x);
        nn = Tanh()(torch);
        #[params(weight = pass, bias = None)]
        lambda = Linear(W - 1, 2 * W)(Narrow(1, W - 1)(Concat()(nn, x)));
    }

    pub Outer(x: [3], h: [5]) -> (y) {
        g = GruCell<3, 5>(x, h).h_next;
        y = Linear(5, 1)(g);
    }
}

#[test]
fn the_state_dict_has_the_graphs_names() {
    let mut rng = StdRng::seed_from_u64(0);
    assert_same_names(&RnnCell::<f32>::new(&mut rng));
    assert_same_names(&CharStep::<f64>::new(&mut rng, 11, 16).unwrap());
    assert_same_names(&Keywords::<6, f64>::new(&mut rng));
    assert_same_names(&Outer::<f32>::new(&mut rng).unwrap());
    assert_same_names(&LstmCell::<3, 4, f32>::new(&mut rng));
}

#[test]
fn nested_classes_come_first_and_once_and_build_uses_the_sizes() {
    let g = CharStep::<f32>::new(&mut StdRng::seed_from_u64(0), 11, 16).unwrap();
    let module = g.to_pytorch();
    let lstm = module
        .find("class LstmCell(nn.Module)")
        .expect("the nested class");
    let outer = module.find("class CharStep(nn.Module)").expect("the class");
    assert!(lstm < outer);
    assert_eq!(module.matches("class LstmCell(").count(), 1);
    assert!(
        module.contains("return CharStep(vocab=11, hidden=16)"),
        "{module}"
    );
    let k = Keywords::<6, f64>::new(&mut StdRng::seed_from_u64(0)).to_pytorch();
    assert!(k.contains("return Keywords(W=6)"), "{k}");
}
