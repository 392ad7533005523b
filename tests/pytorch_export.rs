//! `Graph::to_pytorch`: the module is valid Python, and the state dict its
//! classes declare (read from the Python syntax tree by `python3`, without
//! torch) has exactly the graph's parameter names, in the graph's order.
//! That the numbers agree is checked where torch is installed, by
//! `scripts/compare_pytorch_export.py` (see the README).

// `Colliding`'s names (tests/common/colliding.rs): `ﬁ` beside `fi`.
#![allow(uncommon_codepoints, confusable_idents, mixed_script_confusables)]

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
        if isinstance(st, ast.Assign) and isinstance(st.targets[0], (ast.Attribute, ast.Subscript)):
            # self.a.b = .., or self._modules["a"] = .., self._parameters["a"] = ..,
            # self._modules["a"].b = ..: the path of names, each exact.
            target, path = st.targets[0], []
            while True:
                if isinstance(target, ast.Attribute):
                    path.insert(0, target.attr)
                    target = target.value
                elif isinstance(target, ast.Subscript):
                    assert target.value.attr in ("_modules", "_parameters"), ast.dump(target)
                    path.insert(0, target.slice.value)
                    target = target.value.value
                else:
                    break
            attr, call = ".".join(path), st.value
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and getattr(st.value.func, "id", None) == "setattr":
            attr, call = st.value.args[1].value, st.value.args[2]
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and getattr(st.value.func, "id", None) == "_alias":
            # Hooks: the state dict says `name` for what is registered as `alias`.
            aliases = {k.value: v.value for k, v in zip(st.value.args[1].keys, st.value.args[1].values)}
            def renamed(n):
                head, _, rest = n.partition(".")
                return aliases.get(head, head) + ("." + rest if rest else "")
            out = [renamed(n) for n in out]
            continue
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

#[path = "common/colliding.rs"]
mod colliding;
use colliding::{one, Colliding};

#[path = "common/elman.rs"]
mod elman;
use elman::ElmanStack;

use one::Cell as Renamed;

graph! {
    /// A nested graph reached through an alias of its type.
    pub Aliased(x: [3]) -> (y) {
        y = Renamed(x).y;
    }
}

#[test]
fn a_nested_graph_reached_through_an_alias_is_its_own_class() {
    let g = Aliased::<f32>::new(&mut StdRng::seed_from_u64(0)).unwrap();
    assert_same_names(&g);
    let module = g.to_pytorch();
    assert!(
        module.contains("class Cell(nn.Module)") && module.contains("self.y_renamed = Cell()"),
        "{module}"
    );
    assert!(!module.contains("Renamed("), "{module}");
}

#[test]
fn names_that_would_meet_in_python_stay_apart() {
    let g = Colliding::<f64>::new(&mut StdRng::seed_from_u64(0), 4).unwrap();
    assert_same_names(&g);
    let module = g.to_pytorch();
    // Two classes for the two `Cell`s, each defined once.
    assert_eq!(module.matches("class Cell(nn.Module)").count(), 1, "{module}");
    assert_eq!(module.matches("class Cell_2(nn.Module)").count(), 1, "{module}");
    assert!(module.contains("self.forward_cell = Cell()"), "{module}");
    assert!(module.contains("self.b_cell = Cell_2()"), "{module}");
    // Names Python would read otherwise are registered by their strings.
    assert!(
        module.contains("self._modules[\"ﬁ\"] = nn.Linear(2, lambda__)"),
        "{module}"
    );
    // torch assigns `training` itself: an alias, named back by hooks.
    assert!(
        module.contains("self.training_alias = nn.Linear(lambda__, 2)"),
        "{module}"
    );
    assert!(
        module.contains("_alias(self, {\"training_alias\": \"training\", \"sizes_alias\": \"_sizes\"})"),
        "{module}"
    );
    // Locals: every name its own, none a keyword.
    let locals = r#"
import ast, json, sys, keyword
tree = ast.parse(sys.stdin.read())
cls = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "Colliding")
fwd = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward")
targets = [t.id for st in fwd.body if isinstance(st, ast.Assign) for t in st.targets if isinstance(t, ast.Name)]
print(json.dumps({"args": [a.arg for a in fwd.args.args], "targets": targets}))
"#;
    let found: serde_json::Value = serde_json::from_str(&python(locals, &module)).unwrap();
    let mut all: Vec<String> = serde_json::from_value(found["targets"].clone()).unwrap();
    let args: Vec<String> = serde_json::from_value(found["args"].clone()).unwrap();
    assert_eq!(args[0], "self");
    all.extend(args[1..].iter().cloned());
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "two names share a local: {all:?}\n{module}");
    assert!(all.iter().all(|n| n.is_ascii()), "{all:?}");
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
        module.contains("return CharStep(11, 16)  # vocab = 11, hidden = 16"),
        "{module}"
    );
    let k = Keywords::<6, f64>::new(&mut StdRng::seed_from_u64(0)).to_pytorch();
    assert!(k.contains("return Keywords(6)  # W = 6"), "{k}");
}

graph! {
    #[recurrent(h = h_n, c = c_n)]
    pub CharDeep[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden]) -> (logits, h_n, c_n) {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        logits = Linear(hidden, vocab)(y);
    }
}

/// Parses `module` as Python; its text on failure.
fn parses(module: &str) {
    let out = python(
        "import ast, sys\nast.parse(sys.stdin.read())\nprint('ok')",
        module,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn shipped_stacks_are_torchs_own_modules_and_other_stacks_a_module_list() {
    let mut rng = StdRng::seed_from_u64(0);
    let deep = CharDeep::<f32>::new(&mut rng, 11, 8, 3).unwrap().to_pytorch();
    parses(&deep);
    assert!(deep.contains("class Lstm(nn.LSTM):"), "{deep}");
    assert!(
        deep.contains("super().__init__(input, hidden, num_layers=layers)"),
        "{deep}"
    );
    assert!(deep.contains("return CharDeep(11, 8, 3)"), "{deep}");
    let gru = nngraph::cells::Gru::<f64>::new(&mut rng, 4, 5, 2)
        .unwrap()
        .to_pytorch();
    parses(&gru);
    assert!(
        gru.contains("class Gru(nn.GRU):") && gru.contains("return Gru(4, 5, 2)"),
        "{gru}"
    );
    // A stack of the user's layers: `_Stack` of the two classes, its
    // tensors named inline.
    let stack = ElmanStack::<f64>::new(&mut rng, 3).unwrap().to_pytorch();
    parses(&stack);
    assert!(stack.contains("class _Stack(nn.Module):"), "{stack}");
    assert!(
        stack.contains("_Stack(layers, lambda: Elman(5, 6), lambda: Elman(6, 6))"),
        "{stack}"
    );
    assert!(stack.contains("_inline(self, \"top_elman\")"), "{stack}");
}
