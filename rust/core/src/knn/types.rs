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
    /// exact up to [`AUTO_EXACT_MAX_N`](super::AUTO_EXACT_MAX_N) points; above, approximate
    /// with recall estimated on a sample against exact search, then a stronger approximate
    /// pass, then exact search (announced first) while the recall floor is not met
    Auto,
}

impl Metric {
    /// Every metric, in the order its name is listed to users.
    pub const ALL: [Metric; 3] = [Metric::Cosine, Metric::InnerProduct, Metric::SquaredL2];

    /// The metric's name: `"cosine"`, `"ip"` or `"sqeuclidean"` (the names the Python package
    /// accepts, lists and stores with a graph).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
            Metric::SquaredL2 => "sqeuclidean",
        }
    }

    /// The metric a name stands for: its [`name`](Metric::name) or an alias (`"inner_product"`
    /// for ip, `"l2"` and `"squared_l2"` for sqeuclidean).
    pub fn from_name(name: &str) -> Option<Metric> {
        match name {
            "inner_product" => Some(Metric::InnerProduct),
            "l2" | "squared_l2" => Some(Metric::SquaredL2),
            _ => Metric::ALL.into_iter().find(|m| m.name() == name),
        }
    }
}

impl Method {
    /// Every method, in the order its name is listed to users.
    pub const ALL: [Method; 3] = [Method::Auto, Method::Exact, Method::Approx];

    /// The method's name: `"auto"`, `"exact"` or `"approx"`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Approx => "approx",
            Method::Auto => "auto",
        }
    }

    /// The method a name stands for.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// `min_recall` by default: the recall floor `Auto` holds the approximate graph to.
pub const DEFAULT_MIN_RECALL: f64 = 0.95;

/// `recall_sample` by default: query rows checked against exact search to estimate recall.
pub const DEFAULT_RECALL_SAMPLE: usize = 1000;

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
        Self { min_recall: DEFAULT_MIN_RECALL, recall_sample: DEFAULT_RECALL_SAMPLE, build_k: 0, n_trees: 0, max_iters: 0 }
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
