//! The public parameter and result types of kNN search (shared by every search module).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// cosine similarity, higher is better (rows are L2-normalised internally)
    Cosine,
    /// inner product, higher is better
    InnerProduct,
    /// squared Euclidean distance, lower is better
    SquaredL2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Exact,
    Approx,
    /// exact below a size threshold; above it approximate, with recall estimated on a
    /// sample against exact search and a fallback/refinement when it is below 0.95
    Auto,
    /// `Auto`'s second, stronger approximate pass on its own (reported as `Approx`): for a
    /// caller that runs `Auto`'s steps itself, to say so before a long exact fallback starts
    ApproxRetry,
}

#[derive(Clone, Debug)]
pub struct ApproxParams {
    /// recall floor for `Auto`: the lower end of the Wilson 95% interval of the sampled
    /// recall must reach it (and reported for `Approx`)
    pub min_recall: f64,
    /// number of sampled query points used to estimate recall
    pub recall_sample: usize,
    /// neighbours kept per node while NN-descent runs (0: automatic, `max(2k, 30)` capped at n-1);
    /// a pool larger than `k` is what buys recall
    pub build_k: usize,
    /// random-projection trees seeding NN-descent (0: automatic)
    pub n_trees: usize,
    /// NN-descent iteration cap (0: automatic)
    pub max_iters: usize,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self { min_recall: 0.95, recall_sample: 1000, build_k: 0, n_trees: 0, max_iters: 0 }
    }
}

#[derive(Clone, Debug)]
pub struct KnnParams {
    pub k: usize,
    pub metric: Metric,
    pub method: Method,
    pub seed: u64,
    pub approx: ApproxParams,
}

#[derive(Clone, Debug)]
pub struct KnnResult {
    pub n: usize,
    pub k: usize,
    /// row-major `(n, k)`; best neighbour first; never the point itself
    pub indices: Vec<u32>,
    /// row-major `(n, k)`; similarity (Cosine, InnerProduct) or squared distance (SquaredL2)
    pub scores: Vec<f32>,
    /// the method that produced the graph (never `Auto`)
    pub method_used: Method,
    /// recall@k estimated on a sample against exact search (None for `Exact`)
    pub estimated_recall: Option<f64>,
    /// `Auto` only, when its first approximate pass fell short of `min_recall`: the estimated
    /// recall of each approximate pass it ran (then `method_used` says which result was kept)
    pub approx_recalls: Vec<f64>,
}
