use nngraph::prelude::*;

graph! {}

fn main() {}
