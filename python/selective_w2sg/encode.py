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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .models import Backbone, Device, length_sorted_batches, pad_batch, pick_device, pool, tokenize
from .tasks import Example, Question, format_example

# Softmax temperature of encoder cosine scores: cosines of sentence embeddings live in a narrow
# band, so T=1 would make every question look uncertain. 0.05 is the usual contrastive scale.
COSINE_TEMPERATURE = 0.05


@dataclass
class EncodeOutput:
    """Per-example arrays for one split, rows aligned with `Splits.examples[split]`."""

    embedding: np.ndarray  # (n, d) float32, rows L2-normalised
    features: np.ndarray  # (n, d) float32
    self_prob: np.ndarray  # (n,) float32
    self_label: np.ndarray  # (n,) float32 in {0, 1}


@dataclass
class EncodeStats:
    texts: int = 0  # distinct texts passed through the model
    forward_calls: int = 0
    wall_s: float = 0.0


def middle_layer(backbone: Backbone) -> int:
    n_layers = int(getattr(backbone.model.config, "num_hidden_layers", 2))
    return max(1, n_layers // 2)


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
) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """Pooled hidden states of `texts` per layer and, when `prefixes` is given (causal LMs), the
    mean log-likelihood of each text's tokens after its prefix."""
    tok = backbone.tokenizer
    ids = tokenize(backbone, texts, max_length)
    starts = None
    if prefixes is not None:
        # The answer is the text's tokens after its prefix, counted on the untruncated texts: texts
        # are cut from the left, so a long text keeps its answer tokens at its end, but the prefix
        # it shares with its question would no longer line up after the cut.
        full = backbone.tokenizer(list(texts))["input_ids"]
        pre = backbone.tokenizer(list(prefixes))["input_ids"]
        n_answer = np.array([len(f) - _common_prefix(f, q) for f, q in zip(full, pre)])
        starts = np.array([max(1, len(x) - n) for x, n in zip(ids, n_answer)])
    special = set(getattr(tok, "all_special_ids", []) or []) - {tok.unk_token_id}
    model = backbone.model.to(device.device)
    feats = {layer: np.empty((len(texts), backbone.hidden_size), np.float32) for layer in layers}
    # NaN: no answer token could be scored (no evidence); such an option ranks below any scored one.
    ll = np.full(len(texts), np.nan, np.float32) if prefixes is not None else None
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        input_ids, mask = pad_batch([ids[i] for i in batch], tok.pad_token_id, tok.padding_side)
        input_ids, mask = input_ids.to(device.device), mask.to(device.device)
        kw = {"input_ids": input_ids, "attention_mask": mask, "output_hidden_states": True}
        if backbone.is_causal:
            kw["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        with device.autocast():
            out = model(**kw)
        stats.forward_calls += 1
        for layer in layers:
            feats[layer][batch] = pool(out.hidden_states[layer], mask, backbone.default_pooling).float().cpu().numpy()
        if ll is not None and starts is not None:
            # Only the positions that predict answer tokens are turned into fp32 log-probabilities
            # (not every position of the batch: at a 150k vocabulary that is gigabytes).
            width = input_ids.shape[1]
            rows, pos, owner = [], [], []
            for row, i in enumerate(batch):
                n_tok = len(ids[i])
                offset = width - n_tok if tok.padding_side == "left" else 0
                answer = [p + offset for p in range(int(starts[i]), n_tok) if ids[i][p] not in special]
                rows += [row] * len(answer)
                pos += answer
                owner += [i] * len(answer)
            if pos:
                r = torch.tensor(rows, device=input_ids.device)
                q = torch.tensor(pos, device=input_ids.device)
                logp = torch.log_softmax(out.logits[r, q - 1].float(), dim=-1)
                tok_ll = logp.gather(-1, input_ids[r, q][:, None])[:, 0].double().cpu().numpy()
                owners = np.array(owner)
                for i in np.unique(owners):
                    ll[i] = float(tok_ll[owners == i].mean())
        if progress is not None:
            progress(len(batch))
    stats.texts += len(texts)
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
                   among: str = "presented") -> np.ndarray:
        """P(IK) inputs per example: the hidden features and, by default, the strong model's own
        answer confidence (candidate prob, its question's max prob and normalised entropy, over
        the candidates `among` says) -- the cheapest strong signal of whether it knows the answer."""
        r = self.rows(examples)
        x = np.asarray(self.features[r], dtype=np.float32)
        if not with_confidence:
            return x
        a = self.answers(examples, among)
        conf = np.stack([a.prob, a.confidence, a.entropy], axis=1)
        return np.concatenate([x, conf.astype(np.float32)], axis=1)


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
) -> EncodedQuestions:
    """Encode every option of every question in one pass over the distinct texts."""
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
    feats, ll = _forward(
        backbone, texts, prefixes if backbone.is_causal else None, layers,
        batch_size=batch_size, max_length=max_length, device=device, stats=stats, progress=progress,
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
