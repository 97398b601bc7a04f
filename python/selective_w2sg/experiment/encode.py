"""The encode pass: ONE frozen forward pass of the pretrained strong model over every
(question, option) text of every split gives, per binary example:

* ``embedding`` -- the pooled last hidden state, L2-normalised: the graph's node vector;
* ``features`` -- the pooled hidden state of a chosen layer (default: the middle one): P(IK)'s input;
* ``self_prob`` -- the strong model's zero-shot probability that the example's candidate is the
  right option, and ``self_label`` -- 1.0 where the candidate is the model's own answer (argmax).

Option scores: causal LMs -- the length-normalised log-likelihood of the option's tokens after
the question (read from the same forward pass); encoders -- the cosine similarity between the
embedding of the question and that of the option (question and option texts join the same
single pass). A question's option scores become probabilities by a softmax over its options.
Every distinct text is passed through the model exactly once."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import dist
from ..graph.errors import ConfigError
from .models import (
    Backbone, Device, forward_accepts, length_sorted_batches, pad_batch, pick_device, pool, position_ids_from_mask,
    split_lm, tokenize,
)
from .tasks import Example, Question, format_example

# Softmax temperature of encoder cosine scores: cosines of sentence embeddings live in a narrow
# band, so T=1 would make every question look uncertain. 0.05 is the usual contrastive scale.
COSINE_TEMPERATURE = 0.05
# Shared-prefix passes: the cost of one forward call, in padded tokens, against which the batching
# of prefixes and of option continuations weighs padding. Measured for SmolLM2-135M on this
# project's CPU (fp32, one thread): ~55 ms per call (every weight read once) against ~2 ms per
# token. Options are a few tokens long and vary, so fixed batches would be mostly padding.
CALL_COST_TOKENS = 28.0


@dataclass
class EncodeOutput:
    """Per-example arrays for one split, rows aligned with `Splits.examples[split]`."""

    embedding: np.ndarray  # (n, d) float32, rows L2-normalised
    features: np.ndarray  # (n, d) float32
    self_prob: np.ndarray  # (n,) float32
    self_label: np.ndarray  # (n,) float32 in {0, 1}


@dataclass
class EncodeStats:
    texts: int = 0  # distinct texts encoded
    tokens: int = 0  # real (non-pad) token positions run through the model; a shared prefix counts once
    padded_tokens: int = 0  # token positions including padding
    forward_calls: int = 0
    wall_s: float = 0.0

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.wall_s if self.wall_s > 0 else 0.0


def middle_layer(backbone: Backbone) -> int:
    n_layers = int(getattr(backbone.model.config, "num_hidden_layers", 2))
    return max(1, n_layers // 2)


@dataclass
class _Plan:
    """The token ids of the distinct texts and, for a causal LM, where each text's answer starts."""

    ids: list[list[int]]
    starts: np.ndarray | None  # (n,) first answer token of each text (causal), else None
    special: set[int]


@dataclass
class _Results:
    """Per-text outputs of a forward pass; each unit of work fills its own rows."""

    feats: dict[int, np.ndarray]
    ll: np.ndarray | None

    def answer_ll(self, hidden: list[torch.Tensor], targets: list[int], owners: list[int], head: nn.Module) -> None:
        """Mean log-likelihood per text from the final hidden states that predict its answer
        tokens: the vocabulary projection and log-softmax run in fp32 on those positions only."""
        if not hidden or self.ll is None:
            return
        h = torch.stack(hidden)
        with torch.autocast(device_type=h.device.type, enabled=False):
            logits = nn.functional.linear(h.float(), head.weight.float(),
                                          None if getattr(head, "bias", None) is None else head.bias.float())
        logp = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(targets, device=h.device)
        tok_ll = logp.gather(-1, tgt[:, None])[:, 0].double().cpu().numpy()
        own = np.asarray(owners)
        for i in np.unique(own):
            self.ll[i] = float(tok_ll[own == i].mean())


def _answer_positions(plan: _Plan, i: int) -> list[int]:
    """Positions (in text i's own token ids) of its scored answer tokens: special tokens excluded."""
    ids = plan.ids[i]
    assert plan.starts is not None
    return [p for p in range(int(plan.starts[i]), len(ids)) if ids[p] not in plan.special]


def _shared_prefix(plan: _Plan, group: Sequence[int]) -> int:
    """Tokens a question's option texts share at their start, as many as can be computed once:
    every text keeps at least one token of its own (its pooled state), and no answer token is
    inside the prefix (a shared answer token would still be scored, from the prefix's last state)."""
    seqs = [plan.ids[i] for i in group]
    n = min(len(s) for s in seqs) - 1
    if plan.starts is not None:
        n = min(n, int(min(plan.starts[i] for i in group)))
    first = seqs[0]
    for k in range(max(n, 0)):
        if any(s[k] != first[k] for s in seqs[1:]):
            return k
    return max(n, 0)


def _work_units(plan: _Plan, groups: Sequence[Sequence[int]] | None, batch_size: int,
                max_tokens: int | None) -> list[tuple[str, Any]]:
    """The pass as a fixed list of batches, the same in every process (so a rank's share of
    them computes exactly what one process would). ("plain", text indices): texts as whole
    sequences. ("shared", [(text indices, prefix length), ...]): questions whose option texts
    share a prefix, at most `batch_size` prefixes per batch (`_run_shared` then runs their
    options in chunks of up to 4 x `batch_size` rows)."""
    lengths = [len(x) for x in plan.ids]
    shared: list[tuple[list[int], int]] = []
    plain: list[int] = []
    for g in groups or []:
        p = _shared_prefix(plan, g) if len(g) > 1 else 0
        if p >= 1:
            shared.append((list(g), p))
        else:
            plain.extend(g)
    if groups is None:
        plain = list(range(len(plan.ids)))
    units: list[tuple[str, Any]] = []
    plain_lengths = [lengths[i] for i in plain]
    for b in length_sorted_batches(plain_lengths, batch_size, max_tokens=max_tokens):
        units.append(("plain", np.array([plain[j] for j in b], dtype=np.int64)))
    # Longest prefix first (an OOM shows at once; neighbours' prefixes pad little), at most
    # `batch_size` prefixes per batch; their options then run in length-sorted chunks.
    # (each prefix batch also costs at least one call for its options: twice the call cost)
    for b in length_sorted_batches([p for _, p in shared], batch_size, max_tokens=max_tokens,
                                   call_cost=2 * CALL_COST_TOKENS):
        units.append(("shared", [shared[j] for j in b]))
    return units


def _run_plain(trunk: nn.Module, head: nn.Module | None, backbone: Backbone, plan: _Plan, batch: np.ndarray,
               layers: Sequence[int], device: Device, res: _Results, stats: EncodeStats) -> None:
    """Whole texts, padded on the tokenizer's side, one forward pass."""
    tok = backbone.tokenizer
    input_ids, mask = pad_batch([plan.ids[i] for i in batch], tok.pad_token_id, tok.padding_side)
    input_ids, mask = input_ids.to(device.device), mask.to(device.device)
    kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask, "output_hidden_states": True}
    if backbone.is_causal:
        kw["position_ids"] = position_ids_from_mask(mask)
        kw["use_cache"] = False
    with device.autocast():
        out = trunk(**kw)
    stats.forward_calls += 1
    stats.tokens += int(sum(len(plan.ids[i]) for i in batch))
    stats.padded_tokens += int(input_ids.numel())
    for layer in layers:
        res.feats[layer][batch] = pool(out.hidden_states[layer], mask, backbone.default_pooling).float().cpu().numpy()
    if res.ll is None:
        return
    assert head is not None
    final = out.last_hidden_state
    width = input_ids.shape[1]
    hidden, targets, owners = [], [], []
    for row, i in enumerate(batch):
        offset = width - len(plan.ids[i]) if tok.padding_side == "left" else 0
        for p in _answer_positions(plan, int(i)):
            hidden.append(final[row, p - 1 + offset])
            targets.append(plan.ids[i][p])
            owners.append(int(i))
    res.answer_ll(hidden, targets, owners, head)


def _cache_argument(trunk: nn.Module) -> str:
    """The key/value cache's name in forward() and its output: `cache` in recent transformers,
    `past_key_values` before."""
    return "cache" if forward_accepts(trunk, "cache") else "past_key_values"


def _run_shared(trunk: nn.Module, head: nn.Module, backbone: Backbone, plan: _Plan,
                groups: list[tuple[list[int], int]], layers: Sequence[int], device: Device, res: _Results,
                stats: EncodeStats, max_rows: int | None = None, max_tokens: int | None = None) -> None:
    """Questions whose options share a prefix: the prefixes in one pass (left-padded, keeping
    their key/value cache), then the options' remaining tokens, in chunks of similar length, in
    passes that attend to their question's cached prefix at the positions they have in the whole
    text."""
    pad = backbone.tokenizer.pad_token_id
    plen = [p for _, p in groups]
    pre_ids, pre_mask = pad_batch([plan.ids[g[0]][:p] for g, p in groups], pad, "left")
    pre_ids, pre_mask = pre_ids.to(device.device), pre_mask.to(device.device)
    with device.autocast():
        pre = trunk(input_ids=pre_ids, attention_mask=pre_mask, position_ids=position_ids_from_mask(pre_mask),
                    use_cache=True, output_hidden_states=True)
    stats.forward_calls += 1
    stats.tokens += int(sum(plen))
    stats.padded_tokens += int(pre_ids.numel())
    cache_arg = _cache_argument(trunk)
    cache = getattr(pre, cache_arg)
    texts = [i for g, _ in groups for i in g]
    owners = [k for k, (g, _) in enumerate(groups) for _ in g]
    suffix_len = [len(plan.ids[i]) - plen[k] for i, k in zip(texts, owners)]
    starts = torch.tensor(plen, device=device.device)
    if backbone.default_pooling != "last":  # mean pooling: each prefix's sum and count, once
        pm = pre_mask.unsqueeze(-1)
        pre_sums = {layer: (pre.hidden_states[layer] * pm.to(pre.hidden_states[layer].dtype)).sum(1) for layer in layers}
        pre_count = pre_mask.sum(1, keepdim=True)
    for chunk in length_sorted_batches(suffix_len, len(texts) if max_rows is None else max_rows, max_tokens=max_tokens,
                                       call_cost=CALL_COST_TOKENS):
        rows = [texts[c] for c in chunk]
        owner = [owners[c] for c in chunk]
        own_t = torch.tensor(owner, device=device.device)
        suf_ids, suf_mask = pad_batch([plan.ids[i][plen[k]:] for i, k in zip(rows, owner)], pad, "right")
        suf_ids, suf_mask = suf_ids.to(device.device), suf_mask.to(device.device)
        positions = starts[own_t][:, None] + torch.arange(suf_ids.shape[1], device=device.device)[None, :]
        with device.autocast():
            out = trunk(input_ids=suf_ids, attention_mask=torch.cat([pre_mask[own_t], suf_mask], dim=1),
                        position_ids=positions, use_cache=True, output_hidden_states=True,
                        **{cache_arg: _select_rows(cache, own_t)})
        stats.forward_calls += 1
        stats.tokens += sum(suffix_len[c] for c in chunk)
        stats.padded_tokens += int(suf_ids.numel())
        idx = np.array(rows, dtype=np.int64)
        for layer in layers:
            if backbone.default_pooling == "last":
                v = pool(out.hidden_states[layer], suf_mask, "last")
            else:  # the mean over the whole text: the prefix's sum plus the suffix's
                sm = suf_mask.to(out.hidden_states[layer].dtype).unsqueeze(-1)
                total = pre_sums[layer][own_t] + (out.hidden_states[layer] * sm).sum(1)
                v = total / (pre_count[own_t] + sm.sum(1)).to(total.dtype)
            res.feats[layer][idx] = v.float().cpu().numpy()
        if res.ll is None:
            continue
        hidden, targets, who = [], [], []
        for row, (i, k) in enumerate(zip(rows, owner)):
            p0 = plen[k]
            for p in _answer_positions(plan, i):
                # the state predicting token p sits at p - 1: the prefix's last, or in the suffix pass
                hidden.append(pre.last_hidden_state[k, -1] if p - 1 < p0 else out.last_hidden_state[row, p - 1 - p0])
                targets.append(plan.ids[i][p])
                who.append(i)
        res.answer_ll(hidden, targets, who, head)


def _select_rows(cache: Any, idx: torch.Tensor) -> Any:
    """A key/value cache holding rows `idx` (repeats allowed) of `cache`, which stays intact:
    shallow copies whose tensors are replaced, not written."""
    new = copy.copy(cache)
    if hasattr(cache, "layers"):
        new.layers = [copy.copy(layer) for layer in cache.layers]
    else:  # older transformers: per-layer tensor lists
        new.key_cache, new.value_cache = list(cache.key_cache), list(cache.value_cache)
    new.batch_select_indices(idx)
    return new


@torch.inference_mode()
def _forward(
    backbone: Backbone,
    texts: list[str],
    prefixes: list[str] | None,
    layers: Sequence[int],
    *,
    batch_size: int,
    max_length: int,
    device: Device,
    stats: EncodeStats,
    progress: Callable[[int], None] | None,
    groups: Sequence[Sequence[int]] | None = None,
    max_tokens: int | None = None,
) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """Pooled hidden states of `texts` per layer and, when `prefixes` is given (causal LMs), the
    mean log-likelihood of each text's tokens after its prefix.

    `groups` (causal LMs): text indices that share a question; a group's common leading tokens
    are computed once and its texts continue from that key/value cache (`_run_shared`), which
    gives the same numbers as whole texts up to float rounding. Under torchrun each rank runs
    every world_size-th batch of one fixed list and the rows are gathered: the result is
    bit-identical to one process's."""
    tok = backbone.tokenizer
    ids = tokenize(backbone, texts, max_length)
    starts = None
    if prefixes is not None:
        # The answer is the text's tokens after its prefix, counted on the untruncated texts: texts
        # are cut from the left, so a long text keeps its answer tokens at its end, but the prefix
        # it shares with its question would no longer line up after the cut.
        full = tok(list(texts))["input_ids"]
        pre = tok(list(prefixes))["input_ids"]
        n_answer = np.array([len(f) - _common_prefix(f, q) for f, q in zip(full, pre)])
        starts = np.array([max(1, len(x) - n) for x, n in zip(ids, n_answer)])
    special = set(getattr(tok, "all_special_ids", []) or []) - {tok.unk_token_id}
    plan = _Plan(ids, starts, special)
    model = backbone.model.to(device.device)
    trunk, head = split_lm(model) if backbone.is_causal else (model, None)
    if prefixes is not None and head is None:
        raise ConfigError(f"model {backbone.name!r}: option scoring needs a causal LM whose logits are "
                          "lm_head(last hidden state) (no soft-capping or logit scaling)")
    n = len(texts)
    res = _Results({layer: np.zeros((n, backbone.hidden_size), np.float32) for layer in layers},
                   # NaN: no answer token could be scored (no evidence); such an option ranks below any scored one
                   np.full(n, np.nan, np.float32) if prefixes is not None else None)
    use_groups = groups if (groups is not None and head is not None and prefixes is not None) else None
    units = _work_units(plan, use_groups, batch_size, max_tokens)
    world, rank = dist.world_size(), dist.rank()
    mine: list[np.ndarray] = []
    for kind, unit in units[rank::world]:
        if kind == "plain":
            _run_plain(trunk, head, backbone, plan, unit, layers, device, res, stats)
            done = np.asarray(unit)
        else:
            assert head is not None
            _run_shared(trunk, head, backbone, plan, unit, layers, device, res, stats, 4 * batch_size, max_tokens)
            done = np.array([i for g, _ in unit for i in g], dtype=np.int64)
        mine.append(done)
        if progress is not None:
            progress(len(done) * world)  # each rank's share stands for the whole pass's progress
    stats.texts += n
    if world == 1:
        return res.feats, res.ll
    local = np.concatenate(mine) if mine else np.zeros(0, np.int64)
    feats = {layer: dist.gather_rows(a[local], local, n) for layer, a in res.feats.items()}
    ll = dist.gather_rows(res.ll[local], local, n) if res.ll is not None else None
    return feats, ll


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return max(n, 1)


def _softmax_rows(scores: list[np.ndarray], temperature: float) -> list[np.ndarray]:
    """Softmax per question; a NaN score (no evidence) gets probability 0, and a question with
    no scored option gets uniform probabilities."""
    out = []
    for s in scores:
        z = np.asarray(s, np.float64) / temperature
        ok = np.isfinite(z)
        if not ok.any():
            out.append(np.full(len(z), 1.0 / len(z)))
            continue
        e = np.where(ok, np.exp(np.where(ok, z, 0.0) - z[ok].max()), 0.0)
        out.append(e / e.sum())
    return out


@dataclass
class EncodedQuestions:
    """Per-option arrays for a set of questions, options of question ``i`` in rows
    ``offsets[qid] .. offsets[qid] + n_options``."""

    offsets: dict[str, int]
    embedding: np.ndarray  # (n_options_total, d) float32, L2-normalised pooled last layer
    hidden: np.ndarray  # (n_options_total, d) float32, the same pooled last layer, unnormalised
    features: np.ndarray  # (n_options_total, d) float32, pooled `feature_layer`
    option_prob: np.ndarray  # (n_options_total,) float32: softmax of the option scores per question
    is_own_answer: np.ndarray  # (n_options_total,) float32 in {0, 1}: the argmax over all options
    question_confidence: np.ndarray  # (n_options_total,) float32: max option prob of the row's question
    question_entropy: np.ndarray  # (n_options_total,) float32: option entropy / log(n_options), in [0, 1]

    def rows(self, examples: Sequence[Example]) -> np.ndarray:
        return np.array([self.offsets[e.question_id] + e.option_index for e in examples], dtype=np.int64)

    def answers(self, examples: Sequence[Example], among: str = "presented") -> Answers:
        """The strong model's zero-shot answer per example.

        among="presented": the model picks among the candidates its question's examples present
        (for balanced binary examples: the gold answer and one distractor -- the same pair every
        other model sees, since probe features are centred per question); option probabilities
        are renormalised over those candidates. among="all": the argmax over all the question's
        options (an example whose question's argmax is another option gets self-label 0)."""
        r = self.rows(examples)
        if among == "all":
            return Answers(self.is_own_answer[r], self.option_prob[r], self.question_confidence[r],
                           self.question_entropy[r])
        if among != "presented":
            raise ValueError(f"among={among!r} is not 'presented' or 'all'")
        n = len(r)
        _, q = np.unique(np.array([e.question_id for e in examples]), return_inverse=True)
        p = np.asarray(self.option_prob[r], dtype=np.float64)
        total = np.bincount(q, weights=p)
        count = np.bincount(q)
        pn = np.where(total[q] > 0, p / np.maximum(total[q], 1e-300), 1.0 / count[q])
        order = np.lexsort((np.arange(n), -pn, q))  # per question: highest prob first, ties by position
        first = order[np.r_[True, q[order][1:] != q[order][:-1]]] if n else order
        own = np.zeros(n, np.float32)
        own[first] = 1.0
        top = np.zeros(len(count))
        np.maximum.at(top, q, pn)
        ent = np.bincount(q, weights=-pn * np.log(np.maximum(pn, 1e-300)))
        ent = np.where(count > 1, ent / np.log(np.maximum(count, 2)), 0.0)
        return Answers(own, pn.astype(np.float32), top[q].astype(np.float32), ent[q].astype(np.float32))

    def self_labels(self, examples: Sequence[Example], among: str = "presented") -> np.ndarray:
        """(n,) float32 in {0, 1}: 1 where the example's candidate is the strong model's own answer."""
        return self.answers(examples, among).own

    def for_examples(self, examples: Sequence[Example], among: str = "presented") -> EncodeOutput:
        r = self.rows(examples)
        a = self.answers(examples, among)
        return EncodeOutput(self.embedding[r], self.features[r], a.prob, a.own)

    def pik_inputs(self, examples: Sequence[Example], with_confidence: bool = True,
                   among: str = "presented") -> tuple[np.ndarray, np.ndarray | None]:
        """P(IK) inputs per example: the hidden features float32 (n, d) and, by default, the strong
        model's confidence in its own answer float32 (n,) (its question's max option probability
        over the candidates `among` says) -- the cheapest strong signal of whether it knows."""
        r = self.rows(examples)
        x = np.asarray(self.features[r], dtype=np.float32)
        if not with_confidence:
            return x, None
        return x, self.answers(examples, among).confidence.astype(np.float32)


@dataclass
class Answers:
    """The strong model's zero-shot answer, per example."""

    own: np.ndarray  # (n,) float32 in {0, 1}: the example's candidate is the model's answer
    prob: np.ndarray  # (n,) float32: the candidate's probability
    confidence: np.ndarray  # (n,) float32: the max probability over its question's candidates
    entropy: np.ndarray  # (n,) float32: entropy of those probabilities / log(number of them)


def encode_questions(
    backbone: Backbone,
    questions: Sequence[Question],
    *,
    feature_layer: int | None = None,
    batch_size: int = 32,
    max_length: int = 256,
    device: Device | None = None,
    progress: Callable[[int], None] | None = None,
    stats: EncodeStats | None = None,
    share_prefix: bool = True,
    max_tokens: int | None = None,
) -> EncodedQuestions:
    """Encode every option of every question in one pass over the distinct texts.

    `batch_size` texts (option rows) per forward pass, and with `max_tokens` at most that many
    padded token positions. `share_prefix` (causal LMs): a question's context is computed once
    and every option continues from its key/value cache, instead of once per option."""
    t0 = time.perf_counter()
    stats = stats if stats is not None else EncodeStats()
    device = device or pick_device()
    layer = middle_layer(backbone) if feature_layer is None else feature_layer
    all_q = {q.question_id: q for q in questions}
    # Distinct texts: every option of every question in context (for the graph, P(IK) and, for
    # causal LMs, the option likelihoods); encoders also need each question and option alone.
    text_index: dict[str, int] = {}
    texts: list[str] = []
    prefixes: list[str] = []

    def add(text: str, prefix: str) -> int:
        if text not in text_index:
            text_index[text] = len(texts)
            texts.append(text)
            prefixes.append(prefix)
        return text_index[text]

    option_rows = {
        qid: [add(format_example(q.question, o), format_example(q.question, "").rstrip()) for o in q.options]
        for qid, q in all_q.items()
    }
    if not backbone.is_causal:
        q_rows = {qid: add(q.question, "") for qid, q in all_q.items()}
        alone_rows = {qid: [add(o, "") for o in q.options] for qid, q in all_q.items()}
    layers = sorted({-1, layer})
    groups = None
    if backbone.is_causal and share_prefix:
        owned: dict[int, None] = {}
        groups = []
        for rows in option_rows.values():
            g = [r for r in dict.fromkeys(rows) if r not in owned]  # a text shared by questions runs once
            owned.update(dict.fromkeys(g))
            if g:
                groups.append(g)
    feats, ll = _forward(
        backbone, texts, prefixes if backbone.is_causal else None, layers,
        batch_size=batch_size, max_length=max_length, device=device, stats=stats, progress=progress,
        groups=groups, max_tokens=max_tokens,
    )
    last = feats[-1]
    unit = last / np.maximum(np.linalg.norm(last, axis=1, keepdims=True), 1e-12)
    if backbone.is_causal:
        assert ll is not None
        scores = [ll[option_rows[qid]] for qid in all_q]
        probs = _softmax_rows(scores, 1.0)
    else:
        scores = [unit[alone_rows[qid]] @ unit[q_rows[qid]] for qid in all_q]
        probs = _softmax_rows(scores, COSINE_TEMPERATURE)
    offsets: dict[str, int] = {}
    order: list[int] = []
    for qid, p in zip(all_q, probs):
        offsets[qid] = len(order)
        order.extend(option_rows[qid])
    rows = np.array(order, dtype=np.int64)
    own = np.concatenate([(np.arange(len(p)) == np.argmax(p)).astype(np.float32) for p in probs])
    conf = np.concatenate([np.full(len(p), p.max()) for p in probs]).astype(np.float32)
    ent = np.concatenate([np.full(len(p), -(p * np.log(np.maximum(p, 1e-30))).sum() / np.log(len(p))) for p in probs])
    stats.wall_s += time.perf_counter() - t0
    return EncodedQuestions(
        offsets=offsets,
        embedding=np.ascontiguousarray(unit[rows], np.float32),
        hidden=np.ascontiguousarray(last[rows], np.float32),
        features=np.ascontiguousarray(feats[layer][rows], np.float32),
        option_prob=np.concatenate(probs).astype(np.float32),
        is_own_answer=own,
        question_confidence=conf,
        question_entropy=ent.astype(np.float32),
    )
