use nngraph::prelude::*;

graph! {
    pub Classifier(x: [4], target: [3]) -> (loss) {
        loss = CrossEntropy()(Linear(4, 3)(x), target);
    }
}

fn main() {}
