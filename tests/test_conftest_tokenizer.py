def test_tiny_tokenizer_round_trips_any_text(tiny_tokenizer):
    text = "SUBREDDIT: r/test\n\nTL;DR: ünïcode works 42"
    ids = tiny_tokenizer(text)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text
    assert tiny_tokenizer.pad_token_id == tiny_tokenizer.eos_token_id
    assert len(tiny_tokenizer) <= 320
