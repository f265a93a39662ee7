from thinkcount.data.counting import count_keywords, count_waits, keyword_pattern, prompt_text, think_text


def test_keywords_counted_before_the_first_closing_tag_plus_one(keywords):
    p = keyword_pattern(keywords)
    content = "<think>\nOkay, so. Wait, what? Hmm.\n</think>\n\nSo the answer. Wait. Therefore."
    assert count_keywords(content, p) == 3 + 1  # Okay, Wait, Hmm; the answer is not counted


def test_keywords_are_case_sensitive_and_follow_the_alternation_order(keywords):
    p = keyword_pattern(keywords)
    assert count_keywords("<think>wait okay hmm so</think>", p) == 1
    # "But wait" is one match, not "Wait"; "Let me double-check" matches "Let me" first.
    assert count_keywords("<think>But wait, no.</think>", p) == 2
    assert count_keywords("<think>Let me double-check.</think>", p) == 2
    # No word boundaries, as the seed counted: "Sometimes" contains "So".
    assert count_keywords("<think>Sometimes</think>", p) == 2


def test_whole_content_is_counted_when_the_trace_was_cut_off(keywords):
    p = keyword_pattern(keywords)
    assert count_keywords("<think>\nWait, Wait, Wait", p) == 4
    assert count_keywords("</think>\n\nSo, Wait, Hmm.", p) == 1


def test_wait_counts_whole_word_inside_the_think_block():
    assert count_waits("<think>Wait, Waiting, wait. But wait. Wait!</think> Wait Wait") == 3
    assert count_waits("</think> Wait, no think block") == 1
    assert count_waits("<think>Wait, Wait, cut off") == 1
    assert count_waits("no tags at all Wait") == 1


def test_think_text_and_prompt_text():
    assert think_text("<think>\nabc\n</think>\n\nanswer") == "\nabc\n"
    assert think_text("</think>\n\nanswer") == ""
    assert think_text("<think>\nunclosed") == "\nunclosed"
    assert prompt_text("Summarize.", "") == "Summarize."
    assert prompt_text("Summarize.", "Long text") == "Summarize.\nLong text"
