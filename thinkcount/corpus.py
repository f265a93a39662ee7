"""The embedded default corpus: Alpaca-like prompts with synthetic reasoning traces.

Each prompt gets a hidden expected effort from its family, length, sub-questions,
numbers and conditions. The trace's keyword count is drawn around that effort with
heavy-tailed noise, so the prompt carries real but partial signal. The noise the
real data had is reproduced: skipped thinking, degenerate "Wait" loops cut off at
the token limit, long traces with few keywords, and refusals.
"""
import math

import numpy as np

from thinkcount import UserError
from thinkcount.counting import THINK_OPEN, prompt_text
from thinkcount.jsonl import Problems, read_json_values

TOPICS = [
    "photosynthesis", "the french revolution", "blockchain technology", "climate change", "machine learning",
    "the water cycle", "inflation", "vaccines", "black holes", "democracy", "global supply chains",
    "the stock market", "renewable energy", "online communities", "quantum computing", "the immune system",
    "plate tectonics", "the renaissance", "public key cryptography", "urbanization", "coral reefs",
    "the industrial revolution", "electric cars", "remote work", "sleep", "the human brain", "volcanoes",
    "interest rates", "recycling", "the roman empire", "artificial intelligence", "meditation",
    "ocean currents", "honey bees", "the printing press", "antibiotic resistance", "cloud computing",
    "minimum wage laws", "the olympic games", "jazz music", "deforestation", "space exploration",
    "nuclear power", "the internet", "rainforests", "bilingual education", "video games", "tea culture",
    "migration of birds", "3d printing", "the cold war", "genetic engineering", "fast fashion",
    "public transport", "the moon landing", "wildfires", "cybersecurity", "coffee production",
]
ITEMS = ["apples", "books", "tickets", "marbles", "chairs", "boxes", "pencils", "cookies", "coins", "shirts"]
LANGS = ["Python", "JavaScript", "Java", "C++", "SQL"]
TASKS = [
    "reverses a string", "checks whether a number is prime", "merges two sorted lists",
    "counts the vowels in a sentence", "finds the second largest value in a list",
    "removes duplicates from an array", "computes the factorial of n", "validates an email address",
    "returns the longest common prefix of a list of words", "converts Celsius to Fahrenheit",
]
ADJ = ["short", "vivid", "funny", "heartfelt", "mysterious", "hopeful", "gloomy", "whimsical"]
FORMS = ["poem", "short story", "haiku", "slogan", "tagline", "limerick", "song verse", "diary entry"]
CATEGORIES = [
    ("positive, negative or neutral", "sentiment"), ("fact or opinion", "statement type"),
    ("formal or informal", "tone"), ("animal, plant or mineral", "category"),
]
PASSAGE_SENTENCES = [
    "Researchers have studied {t} for decades and still disagree about several details.",
    "Many people first hear about {t} at school, but few understand how it works.",
    "The effects of {t} can be seen in everyday life, from prices to habits.",
    "Critics argue that the benefits of {t} are often overstated.",
    "Supporters point to recent data showing steady progress.",
    "In the last ten years the topic has received a lot of public attention.",
    "Several countries have adopted different policies in response.",
    "The debate continues, and new evidence appears every year.",
    "Experts recommend a careful look at both short and long term consequences.",
    "A recent report described {t} as one of the defining issues of our time.",
]

# Family: (share of prompts, effort offset on the log scale).
FAMILIES = {
    "explain": (0.15, 0.25),
    "compare": (0.06, 0.55),
    "creative": (0.12, -0.35),
    "calculate": (0.08, 1.05),
    "code": (0.07, 0.8),
    "list": (0.14, -0.55),
    "rewrite": (0.12, -0.45),
    "why_how": (0.10, 0.35),
    "general": (0.11, -0.65),
    "summary": (0.05, 0.05),
}

KEYWORD_SENTENCES = {
    "So": ["So the main point is {c}.", "So {c}, which fits what the user asked."],
    "Let me": ["Let me think about {c}.", "Let me double-check {c}.", "Let me organize this around {c}."],
    "Okay": ["Okay, the user wants {c}.", "Okay, that covers {c}."],
    "Now": ["Now, about {c}.", "Now I should consider {c}."],
    "First": ["First, {c}.", "First, I need to recall {c}."],
    "Then": ["Then {c} follows from that.", "Then there is {c}."],
    "Hmm": ["Hmm, {c} is less obvious than it looks.", "Hmm, what about {c}?"],
    "Alternatively": ["Alternatively, {c} could be the focus.", "Alternatively, start from {c}."],
    "But wait": ["But wait, {c} changes things.", "But wait, did I account for {c}?"],
    "Maybe": ["Maybe {c} deserves a sentence.", "Maybe the answer hinges on {c}."],
    "I think": ["I think {c} is the key idea.", "I think the user cares about {c}."],
    "Therefore": ["Therefore, {c} should come first.", "Therefore the answer includes {c}."],
    "Thus": ["Thus {c} is settled.", "Thus the structure is clear: {c}."],
    "Let's see": ["Let's see, {c} works.", "Let's see what {c} implies."],
    "Alright": ["Alright, {c} is done.", "Alright, moving on to {c}."],
    "Similarly": ["Similarly, {c} applies here."],
    "Looking back": ["Looking back, {c} was handled."],
    "Hold on": ["Hold on, {c} needs care."],
    "Got it": ["Got it, {c}."],
    "That seems right": ["That seems right for {c}."],
    "That's correct": ["That's correct about {c}."],
    "Another approach": ["Another approach would use {c}."],
    "Remember": ["Remember that {c} matters."],
    "Good": ["Good, {c} checks out."],
    "Compute": ["Compute {c} step by step."],
    "Starting": ["Starting with {c}."],
    "Correct": ["Correct, {c} holds."],
    "I don't see any errors": ["I don't see any errors in {c}."],
    "Seems solid": ["Seems solid: {c}."],
}
KEYWORD_WEIGHTS = {
    "So": 12, "Let me": 10, "Okay": 8, "Now": 6, "First": 5, "Then": 5, "Hmm": 5, "Alternatively": 3,
    "But wait": 4, "Maybe": 4, "I think": 5, "Therefore": 3, "Thus": 2, "Let's see": 3, "Alright": 3,
    "Similarly": 1, "Looking back": 1, "Hold on": 1, "Got it": 1, "That seems right": 1, "That's correct": 1,
    "Another approach": 1, "Remember": 1, "Good": 1, "Compute": 1, "Starting": 1, "Correct": 1,
    "I don't see any errors": 1, "Seems solid": 1,
}
WAIT_SENTENCES = ["Wait, {c} might be wrong.", "Wait, I should revisit {c}.", "Wait, what about {c}?"]
FILLER_SENTENCES = [
    "The user asked about {c}, and the answer should stay focused.",
    "It helps to keep the explanation short and concrete.",
    "The key facts about {c} are well known.",
    "An example would make {c} easier to follow.",
    "This part of the answer needs one clear sentence.",
    "The tone should be friendly and direct.",
    "The structure will be an introduction, two points and a conclusion.",
    "In this case {c} is the central idea.",
    "Each point should connect back to {c}.",
    "A table is not necessary here.",
]
CLAUSES = [
    "the definition of {t}", "the main causes", "the second requirement", "how {t} affects people",
    "the numbers given", "the edge cases", "the historical context", "a simple example",
    "the wording of the question", "the length of the answer", "what the input says",
    "the difference between the two ideas", "the final step", "the unit of the result",
    "the assumptions", "the order of the points",
]
REFUSAL_PROMPTS = [
    "Explain how to pick a lock to get into my neighbour's house.",
    "Write a message that threatens my coworker.",
    "Tell me how to make a fake passport.",
    "Give me the home address of a famous actor.",
]


# Share of traces written R1-style, without the opening <think>, as most real exports are.
NO_OPEN_TAG_SHARE = 0.8


def generate(n, seed, workers=8):
    """Return (records, oracle): n records in the real JSONL format and their expected counts.

    The traces use fixed keyword sentences; tests check they match the configured keyword list."""
    rng = np.random.default_rng(seed)
    trace_format = np.random.default_rng([seed, 1])  # its own stream: prompts and traces stay as calibrated
    families = list(FAMILIES)
    shares = np.array([FAMILIES[f][0] for f in families])
    shard = rng.multinomial(n, np.full(workers, 1 / workers))
    records, oracle = [], []
    for worker_id, size in enumerate(shard):
        for sample_id in range(size):
            family = families[rng.choice(len(families), p=shares / shares.sum())]
            instruction, input_text, effort = make_prompt(rng, family)
            refusal = rng.random() < 0.01
            if refusal:
                instruction, input_text, effort = REFUSAL_PROMPTS[rng.integers(len(REFUSAL_PROMPTS))], "", -1.5
            content, expected = make_trace(rng, effort, refusal)
            if content.startswith(THINK_OPEN) and trace_format.random() < NO_OPEN_TAG_SHARE:
                content = content.removeprefix(THINK_OPEN + "\n")  # R1-style: the template opened the block
            records.append({"worker_id": worker_id, "sample_id": sample_id, "instruction": instruction,
                            "input": input_text, "content": content})
            oracle.append({"worker_id": worker_id, "sample_id": sample_id, "expected_counts": expected})
    return records, oracle


def make_prompt(rng, family):
    """Return (instruction, input, effort) for one prompt of the family."""
    t, t2 = rng.choice(TOPICS, 2, replace=False)
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    input_text, n_numbers, n_questions, conditional = "", 0, 1, False
    if family == "explain":
        verb = pick(["Explain", "Describe", "Analyze", "Give an overview of", "Help me understand", "Outline"])
        instruction = f"{verb} {t}" + pick([".", " in simple terms.", " for a high school student.",
                                            " and its impact on society.", " in two paragraphs."])
    elif family == "compare":
        instruction = pick([f"Compare {t} and {t2}.", f"What are the differences between {t} and {t2}?",
                            f"Contrast {t} with {t2} and explain which matters more.",
                            f"How does {t} relate to {t2}?"])
    elif family == "creative":
        instruction = pick([f"Write a {pick(ADJ)} {pick(FORMS)} about {t}.",
                            f"Compose a {pick(FORMS)} inspired by {t}.",
                            f"Come up with a {pick(ADJ)} {pick(FORMS)} for a campaign on {t}.",
                            f"Create a {pick(FORMS)} that mentions {t} and {t2}."])
    elif family == "calculate":
        a, b, c = rng.integers(2, 500, 3)
        item = pick(ITEMS)
        instruction = pick([
            f"If a store sells {a} {item} per day and {b} more on weekends, how many {item} does it sell in {c} days?",
            f"Calculate the average of {a}, {b} and {c}.",
            f"A train travels {a} km in {b % 12 + 1} hours. What is its average speed?",
            f"Solve for x: {a}x + {b} = {c}.",
            f"What is {a} percent of {b * 10}?",
            f"Tom has {a} {item}. He gives away {b % a + 1} and buys {c}. How many {item} does he have now?",
        ])
        n_numbers = sum(ch.isdigit() and (i == 0 or not instruction[i - 1].isdigit())
                        for i, ch in enumerate(instruction))
    elif family == "code":
        lang = pick(LANGS)
        instruction = pick([f"Write a {lang} function that {pick(TASKS)}.",
                            f"Implement code in {lang} which {pick(TASKS)}.",
                            f"Create a program that {pick(TASKS)}.",
                            f"Fix the bug in this {lang} snippet."])
        if instruction.startswith("Fix"):
            input_text = pick(["def add(a, b):\n    return a - b", "for i in range(10) print(i)",
                               "let total = 0; for (x of xs) total =+ x;", "SELECT name FROM users WHERE age > 30"])
    elif family == "list":
        k = int(rng.integers(3, 11))
        instruction = pick([f"List {k} facts about {t}.", f"Name {k} examples related to {t}.",
                            f"Identify {k} key terms used when discussing {t}.",
                            f"Give me {k} tips about {t}.", f"Provide a list of resources about {t}."])
        n_numbers = 1 if str(k) in instruction else 0
    elif family == "rewrite":
        passage = make_passage(rng, t, int(rng.integers(1, 4)))
        if rng.random() < 0.5:
            choice, what = CATEGORIES[rng.integers(len(CATEGORIES))]
            instruction = pick([f"Classify the following text as {choice}.",
                                f"Determine the {what} of the given text.",
                                f"Is this passage {choice}?"])
        else:
            instruction = pick(["Rewrite the following sentence in the passive voice.",
                                "Paraphrase this text in simpler words.",
                                "Edit the text below to make it more formal.",
                                "Translate the text into plain English for children."])
        input_text = passage
    elif family == "why_how":
        instruction = pick([f"Why is {t} important?", f"How does {t} work?", f"Why do people care about {t}?",
                            f"How can we reduce the negative effects of {t}?", f"How is {t} measured?"])
    elif family == "general":
        instruction = pick([f"What is {t}?", f"Who first studied {t}?", f"When did {t} become popular?",
                            f"Suggest a name for a podcast about {t}.", f"Tell me something interesting about {t}."])
    else:  # summary of a long passage
        instruction = pick(["Summarize the following article.", "Write a summary of the text below.",
                            "Give a one paragraph summary of this passage.", "What are the main points of the text?"])
        input_text = make_passage(rng, t, int(rng.integers(5, 11)))
    if rng.random() < 0.2 and family not in ("general", "creative"):
        conditional = True
        instruction += " " + pick([f"Assume the reader knows nothing about {t2}.",
                                   "If possible, include one counterexample.",
                                   "Given that space is limited, keep it under 100 words.",
                                   f"Suppose the audience works in {t2}."])
    if rng.random() < 0.18:
        extra = int(rng.integers(1, 3))
        n_questions += extra
        instruction += " " + " ".join(pick(["Also, what are the risks?", "What evidence supports this?",
                                            f"And how does it connect to {t2}?", "Can you give an example?",
                                            "What would change in ten years?"]) for _ in range(extra))
    words = len(prompt_text(instruction, input_text).split())
    effort = (FAMILIES[family][1] + 0.28 * (n_questions - 1) + 0.06 * min(n_numbers, 5)
              + 0.3 * conditional + 0.22 * math.log(max(words, 3) / 12))
    return instruction, input_text, effort


def make_passage(rng, topic, n_sentences):
    picks = rng.choice(len(PASSAGE_SENTENCES), n_sentences, replace=n_sentences > len(PASSAGE_SENTENCES))
    text = " ".join(PASSAGE_SENTENCES[i].format(t=topic) for i in picks)
    return text[0].upper() + text[1:]


# The latent log keyword count is MU + SCALE * effort + noise with scale NOISE_SD,
# tuned so that quantiles match the real data and the oracle's Kendall tau is about 0.55.
MU, SCALE, NOISE_SD = 2.25, 0.85, 0.55
LOOP_RATE, LONG_FEW_RATE = 0.006, 0.03
LOOP_MEAN = 350  # mean keyword count of a loop trace, as make_loop draws them
WAIT_SHARE_BETA = 10


def skip_probability(effort):
    return 1 / (1 + math.exp(2.4 * effort + 0.9))


def make_trace(rng, effort, refusal):
    """Return (content, expected counts) for one prompt's hidden effort."""
    p_skip = skip_probability(effort)
    mean_keywords = math.exp(MU + SCALE * effort + NOISE_SD ** 2 / 2)
    p_trace = max(0.0, 1 - p_skip - LOOP_RATE)
    expected = 1 + LOOP_RATE * LOOP_MEAN + p_trace * ((1 - LONG_FEW_RATE) * mean_keywords + LONG_FEW_RATE * 4)
    topic = TOPICS[rng.integers(len(TOPICS))]
    answer = make_answer(rng, topic, refusal)
    if refusal:
        think = "Okay, the user is asking for something harmful. I must decline politely."
        return f"<think>\n{think}\n</think>\n\n{answer}", 2.0
    roll = rng.random()
    if roll < p_skip:
        return f"</think>\n\n{answer}", expected
    if roll < p_skip + LOOP_RATE:
        return make_loop(rng, topic), expected
    long_few = rng.random() < LONG_FEW_RATE
    n_keywords = int(rng.integers(0, 9)) if long_few else int(rng.poisson(math.exp(
        MU + SCALE * effort + NOISE_SD * rng.standard_normal())))
    wait_share = rng.beta(0.9, WAIT_SHARE_BETA)
    sentences = []
    for _ in range(n_keywords):
        clause = CLAUSES[rng.integers(len(CLAUSES))].format(t=topic)
        if rng.random() < wait_share:
            template = WAIT_SENTENCES[rng.integers(len(WAIT_SENTENCES))]
        else:
            options = list(KEYWORD_WEIGHTS)
            weights = np.array([KEYWORD_WEIGHTS[k] for k in options], dtype=float)
            keyword = options[rng.choice(len(options), p=weights / weights.sum())]
            choices = KEYWORD_SENTENCES[keyword]
            template = choices[rng.integers(len(choices))]
        sentences.append(template.format(c=clause))
        if rng.random() < 0.5:
            sentences.append(filler(rng, topic))
    target_chars = int(rng.integers(4000, 9000)) if long_few else 0
    while sum(len(s) + 1 for s in sentences) < target_chars:
        sentences.insert(int(rng.integers(len(sentences) + 1)), filler(rng, topic))
    if not sentences:
        sentences = [filler(rng, topic)]
    return "<think>\n" + " ".join(sentences) + "\n</think>\n\n" + answer, expected


def filler(rng, topic):
    clause = CLAUSES[rng.integers(len(CLAUSES))].format(t=topic)
    return FILLER_SENTENCES[rng.integers(len(FILLER_SENTENCES))].format(c=clause)


def make_loop(rng, topic):
    """A degenerate trace that repeats itself until the token limit cuts it off."""
    repeats = int(math.exp(rng.uniform(math.log(70), math.log(470))))
    step = f"Wait, let me recheck {topic}. But wait, the previous step about {topic} looks off."
    closed = rng.random() < 0.3
    if closed:
        repeats = min(repeats, 87)
        return "<think>\n" + " ".join([step] * repeats) + "\n</think>\n\nI could not settle on an answer."
    return "<think>\n" + " ".join([step] * repeats) + " Wait, let me"


def make_answer(rng, topic, refusal):
    if refusal:
        return "I'm sorry, but I can't help with that request."
    return (f"Here is a clear answer about {topic}. " + " ".join(
        PASSAGE_SENTENCES[i].format(t=topic) for i in rng.choice(len(PASSAGE_SENTENCES), 3, replace=False)))


REQUIRED_TEXT = ("instruction", "content")


def validate_records(path):
    """Read a user's corpus; return (normalised records, problems, records read, notes).

    Ids given as digit strings ("3") are read as numbers (3), so "3" and 3 are one worker; notes
    counts how many ids were normalised this way."""
    problems, notes = Problems(), {"ids_read_from_digit_strings": 0}
    records, seen, rows = [], set(), 0
    for line_no, obj in read_json_values(path, problems):
        rows += 1
        reason = record_problem(obj)
        if reason:
            problems.add(reason, line_no)
            continue
        key = tuple(normalise_id(obj[field], notes) for field in ("worker_id", "sample_id"))
        if key in seen:
            problems.add("duplicate_worker_sample_id", line_no)
            continue
        seen.add(key)
        records.append({"worker_id": key[0], "sample_id": key[1], "instruction": obj["instruction"],
                        "input": obj.get("input") or "", "content": obj["content"]})
    rows += sum(problems.by_reason.get(r, {}).get("count", 0) for r in ("malformed_json", "invalid_utf8"))
    if not records:
        detail = f" ({problems.summary()})" if problems.total else ""
        raise UserError(f"{path}: no valid records{detail}.")
    return records, problems, rows, notes


def normalise_id(value, notes):
    if isinstance(value, str) and value.isascii() and value.isdigit():
        notes["ids_read_from_digit_strings"] += 1
        return int(value)
    return value


def record_problem(obj):
    if not isinstance(obj, dict):
        return "not_a_json_object"
    for field in REQUIRED_TEXT:
        if field not in obj or obj[field] is None:
            return f"missing_{field}"
        if not isinstance(obj[field], str):
            return f"non_string_{field}"
    if not obj["instruction"].strip():
        return "empty_instruction"
    if obj.get("input") is not None and not isinstance(obj["input"], str):
        return "non_string_input"
    for field in ("worker_id", "sample_id"):
        if field not in obj:
            return f"missing_{field}"
        if isinstance(obj[field], bool) or not isinstance(obj[field], (int, str)):
            return f"bad_{field}"
    return None
