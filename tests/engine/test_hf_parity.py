"""The hf backend against the model cards' reference computations on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForCausalLM

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.testing import write_tokenizer

DOCS = [
    "Paris is the capital and most populous city of France.",
    "Bananas are an excellent source of potassium.",
    "The Eiffel Tower was completed in 1889 for the World's Fair held in Paris, and it remains one of "
    "the most visited monuments in the world.",
    "短い日本語の文書。",
    "x",
]
QUERIES = ["What is the capital of France?", "fruit nutrition", "When was the Eiffel Tower built?"]
TASK = "Given a web search query, retrieve relevant passages that answer the query"


def last_token_pool(last_hidden_states, attention_mask):
    """Qwen3-Embedding model card."""
    left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
    if left_padding:
        return last_hidden_states[:, -1]
    sequence_lengths = attention_mask.sum(dim=1) - 1
    batch_size = last_hidden_states.shape[0]
    return last_hidden_states[torch.arange(batch_size, device=last_hidden_states.device), sequence_lengths]


def reference_embeddings(model_path, tokenizer, texts, max_length=8192):
    """Qwen3-Embedding model card: padded batch, last-token pooling, L2 normalisation."""
    model = AutoModel.from_pretrained(model_path, dtype=torch.float32).eval()
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    emb = last_token_pool(out.last_hidden_state, batch["attention_mask"])
    return F.normalize(emb, p=2, dim=1).numpy()


def reference_scores(model_path, tokenizer, pairs, instruction=TASK, max_length=8192):
    """Qwen3-Reranker model card: yes/no log-softmax over the last-position logits."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    tokenizer.padding_side = "left"
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
        'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
        "<|im_start|>user\n"
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    texts = [f"<Instruct>: {instruction}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    for i, ele in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    with torch.no_grad():
        scores = model(**inputs).logits[:, -1, :]
    true_vector = scores[:, tokenizer.convert_tokens_to_ids("yes")]
    false_vector = scores[:, tokenizer.convert_tokens_to_ids("no")]
    scores = torch.nn.functional.log_softmax(torch.stack([false_vector, true_vector], dim=1), dim=1)
    return scores[:, 1].exp().numpy()


@pytest.fixture(scope="module")
def published_tokenizer(tmp_path_factory):
    """Tokenizer that appends <|endoftext|>, as the published Qwen3-Embedding one does."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tokenizer(tmp_path_factory.mktemp("pub"), append_eos=True))


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_document_embeddings_match_model_card(tiny_embedding, published_tokenizer):
    ref = reference_embeddings(tiny_embedding, published_tokenizer, DOCS)
    got = Qwen3Embedder(tiny_embedding, backend="hf").embed_documents(DOCS)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert cosines(got, ref).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_query_embeddings_match_model_card(tiny_embedding, published_tokenizer):
    texts = [f"Instruct: {TASK}\nQuery:{q}" for q in QUERIES]
    ref = reference_embeddings(tiny_embedding, published_tokenizer, texts)
    got = Qwen3Embedder(tiny_embedding, backend="hf").embed_queries(QUERIES)
    assert cosines(got, ref).min() >= 0.9999
    # the instruction matters: without it the vectors differ
    plain = Qwen3Embedder(tiny_embedding, backend="hf").embed_documents(QUERIES)
    assert cosines(got, plain).max() < 0.9999


def test_truncated_embeddings_match_model_card(tiny_embedding, published_tokenizer):
    long_docs = ["lorem ipsum dolor " * 40, "short one"]
    ref = reference_embeddings(tiny_embedding, published_tokenizer, long_docs, max_length=32)
    got = Qwen3Embedder(tiny_embedding, backend="hf", max_length=32).embed_documents(long_docs)
    assert cosines(got, ref).min() >= 0.9999


def test_batching_does_not_change_vectors(tiny_embedding):
    one = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=1).embed_documents(DOCS)
    many = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=64).embed_documents(DOCS)
    assert cosines(one, many).min() >= 0.99999


def test_rerank_scores_match_model_card(tiny_reranker, plain_tokenizer):
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    ref = reference_scores(tiny_reranker, plain_tokenizer, pairs)
    got = Qwen3Reranker(tiny_reranker, backend="hf").score_pairs(pairs)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4
    assert ((got > 0) & (got < 1)).all()
    assert got.std() > 1e-3  # scores depend on the pair: a constant would not pass


def test_truncated_rerank_scores_match_model_card(tiny_reranker, plain_tokenizer):
    pairs = [("capital?", "Paris " * 300), ("fruit", "banana")]
    ref = reference_scores(tiny_reranker, plain_tokenizer, pairs, max_length=100)
    got = Qwen3Reranker(tiny_reranker, backend="hf", max_length=100).score_pairs(pairs)
    assert np.abs(got - ref).max() <= 1e-4


def test_rerank_instruction_is_used(tiny_reranker, plain_tokenizer):
    pairs = [(QUERIES[0], d) for d in DOCS]
    ref = reference_scores(tiny_reranker, plain_tokenizer, pairs, instruction="Find fruit facts")
    rr = Qwen3Reranker(tiny_reranker, backend="hf")
    got = rr.score(QUERIES[0], DOCS, instruction="Find fruit facts")
    assert np.abs(got - ref).max() <= 1e-4
    assert np.abs(got - rr.score(QUERIES[0], DOCS)).max() > 1e-4
