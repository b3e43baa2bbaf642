"""Exact Qwen3 formats, checked at the token-id level against the real tokenizer."""

from __future__ import annotations

import pytest

from qwen3_rag import formats
from qwen3_rag.formats import EmbeddingFormatter, RerankFormatter

EOS = 151643


def test_special_token_ids(plain_tokenizer):
    assert formats.token_id(plain_tokenizer, "<|endoftext|>") == EOS
    assert plain_tokenizer.convert_tokens_to_ids("<|im_start|>") == 151644
    assert formats.token_id(plain_tokenizer, "yes") == plain_tokenizer.convert_tokens_to_ids("yes")
    assert formats.token_id(plain_tokenizer, "no") == plain_tokenizer.convert_tokens_to_ids("no")


def test_default_instruction_text():
    assert formats.DEFAULT_INSTRUCTION == (
        "Given a web search query, retrieve relevant passages that answer the query"
    )


def test_query_format_exact_ids(plain_tokenizer):
    f = EmbeddingFormatter(plain_tokenizer, 512)
    ids = f.queries(["what is faiss?"], instruction="Find docs")[0]
    expected = plain_tokenizer.encode("Instruct: Find docs\nQuery:what is faiss?", add_special_tokens=False)
    assert ids == [*expected, EOS]
    assert plain_tokenizer.decode(ids) == "Instruct: Find docs\nQuery:what is faiss?<|endoftext|>"


def test_default_instruction_used_for_queries(plain_tokenizer):
    f = EmbeddingFormatter(plain_tokenizer, 512)
    text = plain_tokenizer.decode(f.queries(["q"])[0])
    assert text == f"Instruct: {formats.DEFAULT_INSTRUCTION}\nQuery:q<|endoftext|>"


def test_documents_have_no_instruction_and_one_eos(plain_tokenizer, eos_tokenizer):
    docs = ["Paris is the capital of France.", "ends with eos already"]
    plain = EmbeddingFormatter(plain_tokenizer, 512).documents(docs)
    appended = EmbeddingFormatter(eos_tokenizer, 512).documents(docs)
    # the EOS-appending tokenizer really appends it on its own ...
    assert eos_tokenizer(docs[0])["input_ids"][-1] == EOS
    assert plain_tokenizer(docs[0])["input_ids"][-1] != EOS
    # ... and both give the same ids, with exactly one EOS, at the end
    assert plain == appended
    for ids in plain:
        assert ids.count(EOS) == 1 and ids[-1] == EOS


def test_an_instruction_that_leaves_no_room_for_the_query_is_an_error(plain_tokenizer):
    """Cut from the right, such a prompt would lose every query: all would get one vector."""
    f = EmbeddingFormatter(plain_tokenizer, 32)
    head = len(plain_tokenizer.encode(formats.format_query("", "word " * 100), add_special_tokens=False))
    with pytest.raises(ValueError, match=rf"instruction takes {head} tokens.*max_length=32"):
        f.queries(["what is the capital of France?", "bananas"], instruction="word " * 100)
    # an instruction that fits: a long query is cut like a document, its start kept
    ids = f.queries(["capital " * 50], instruction="Find it")[0]
    assert len(ids) == 32 and ids[-1] == EOS
    assert plain_tokenizer.decode(ids).startswith("Instruct: Find it\nQuery:capital capital")
    assert f.queries([], instruction="word " * 100) == []


def test_embedding_truncation_keeps_eos(plain_tokenizer, eos_tokenizer):
    long = "word " * 1000
    for tok in (plain_tokenizer, eos_tokenizer):
        ids = EmbeddingFormatter(tok, 16).documents([long])[0]
        assert len(ids) == 16
        assert ids[-1] == EOS and ids.count(EOS) == 1
        assert ids[:-1] == tok.encode(long, add_special_tokens=False)[:15]


def reference_rerank_ids(tokenizer, pairs, instruction, max_length):
    """The Qwen3-Reranker model card's ``process_inputs``, written out independently."""
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
    return [prefix_tokens + ids + suffix_tokens for ids in inputs["input_ids"]]


def test_rerank_prompt_matches_model_card(plain_tokenizer):
    pairs = [("capital of France?", "Paris is the capital."), ("q", "  spaced  doc\n")]
    got = RerankFormatter(plain_tokenizer, 8192).pairs(pairs, instruction="Judge it")
    assert got == reference_rerank_ids(plain_tokenizer, pairs, "Judge it", 8192)
    text = plain_tokenizer.decode(got[0])
    assert text.startswith("<|im_start|>system\nJudge whether the Document meets the requirements")
    assert "<|im_start|>user\n<Instruct>: Judge it\n<Query>: capital of France?\n<Document>: Paris" in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_rerank_truncation_cuts_only_the_document(plain_tokenizer):
    f = RerankFormatter(plain_tokenizer, 128)
    query = "a fairly specific question about retrieval"
    ids = f.pairs([(query, "lorem ipsum " * 500)])[0]
    assert len(ids) == 128
    assert ids[: len(f.prefix_ids)] == f.prefix_ids
    assert ids[-len(f.suffix_ids) :] == f.suffix_ids
    body = plain_tokenizer.decode(ids[len(f.prefix_ids) : -len(f.suffix_ids)])
    assert body.startswith(f"<Instruct>: {formats.DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: lorem")
    assert (
        ids
        == reference_rerank_ids(
            plain_tokenizer, [(query, "lorem ipsum " * 500)], formats.DEFAULT_INSTRUCTION, 128
        )[0]
    )


def test_rerank_too_long_query_is_an_error(plain_tokenizer):
    f = RerankFormatter(plain_tokenizer, 128)
    with pytest.raises(ValueError, match="query"):
        f.pairs([("very long query " * 100, "doc")])


def test_rerank_max_length_below_fixed_parts(plain_tokenizer):
    with pytest.raises(ValueError, match="max_length"):
        RerankFormatter(plain_tokenizer, 20)


def test_check_texts_names_bad_index():
    with pytest.raises(TypeError, match=r"texts\[2\]"):
        formats.check_texts(["a", "b", 3])
    with pytest.raises(TypeError, match="single string"):
        formats.check_texts("abc")
