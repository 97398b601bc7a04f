//! Candidate sampling for one NN-descent round.

use super::lists::{NeighbourLists, EMPTY};
use crate::rng::hash3;
use rayon::prelude::*;

/// Per node, up to `mc` new and `mc` old candidates (forward and reverse neighbours), the ones
/// with the smallest hash priority. Rows are split into ranges; each range scans the whole
/// neighbour lists and keeps what lands in it, so no locks are needed.
pub(super) fn sample_candidates(g: &NeighbourLists, mc: usize, sit: u64) -> (Vec<u32>, Vec<u32>) {
    let kk = g.kk;
    let n = g.n();
    let parts = rayon::current_num_threads().max(1);
    let rows_per = n.div_ceil(parts).max(1);
    let mut new_c = vec![EMPTY; n * mc];
    let mut old_c = vec![EMPTY; n * mc];
    new_c.par_chunks_mut(rows_per * mc).zip(old_c.par_chunks_mut(rows_per * mc)).enumerate().for_each(|(p, (nc, oc))| {
        let r0 = p * rows_per;
        let r1 = (r0 + rows_per).min(n);
        let m = r1 - r0;
        let mut new = Sample { ids: nc, pri: vec![u16::MAX; m * mc], mc, r0, sit };
        let mut old = Sample { ids: oc, pri: vec![u16::MAX; m * mc], mc, r0, sit };
        for u in 0..n {
            for s in 0..kk {
                let v = g.idx[u * kk + s];
                if v == EMPTY {
                    continue;
                }
                let side = if g.flag[u * kk + s] != 0 { &mut new } else { &mut old };
                if (r0..r1).contains(&u) {
                    side.offer(u, v);
                }
                if (r0..r1).contains(&(v as usize)) {
                    side.offer(v as usize, u as u32);
                }
            }
        }
    });
    (new_c, old_c)
}

/// The candidate lists of rows `r0..` (`mc` per row), ordered by (priority, id).
struct Sample<'a> {
    ids: &'a mut [u32],
    /// 16-bit priorities (ties go by id), to halve this transient buffer at n = 1M
    pri: Vec<u16>,
    mc: usize,
    r0: usize,
    /// seed of this round
    sit: u64,
}

impl Sample<'_> {
    /// Offer candidate `c` to row `t`.
    #[inline]
    fn offer(&mut self, t: usize, c: u32) {
        let mc = self.mc;
        let pri = (hash3(self.sit, t as u64, c as u64) >> 48) as u16;
        let r = (t - self.r0) * mc;
        let (ci, pr) = (&mut self.ids[r..r + mc], &mut self.pri[r..r + mc]);
        let last = mc - 1;
        if pri > pr[last] || (pri == pr[last] && c >= ci[last]) || ci.contains(&c) {
            return;
        }
        let mut pos = last;
        while pos > 0 && (pri < pr[pos - 1] || (pri == pr[pos - 1] && c < ci[pos - 1])) {
            ci[pos] = ci[pos - 1];
            pr[pos] = pr[pos - 1];
            pos -= 1;
        }
        ci[pos] = c;
        pr[pos] = pri;
    }
}
