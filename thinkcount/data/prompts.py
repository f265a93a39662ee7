"""The prompt side of the embedded corpus: Alpaca-style instructions that must be read to be ranked.

A prompt's hidden effort is a sum of what it asks: the steps of a word problem, the constraints on a
piece of writing, the sub-questions, the conditions, the length and kind of its input, the requirements
on code. Its kind (explain, write, math, ...) adds only a small offset, and the kinds share their
openers (Write, Give, What, Generate, ...), so neither the kind nor the first word gives the effort away.
Wording draws on Faker's word lists (nouns, verbs, adjectives, jobs, names, countries) for breadth.
"""
import math
from dataclasses import dataclass

import numpy as np
from faker.providers.address.en_US import Provider as _Address
from faker.providers.company.en_US import Provider as _Company
from faker.providers.job.en_US import Provider as _Job
from faker.providers.lorem.en_US import Provider as _Lorem
from faker.providers.person.en_US import Provider as _Person

from thinkcount.data.counting import prompt_text

NOUNS = _Lorem.parts_of_speech["noun"]
VERBS = _Lorem.parts_of_speech["verb"]
ADJECTIVES = _Lorem.parts_of_speech["adjective"]
NAMES = tuple(dict.fromkeys(_Person.first_names))
COUNTRIES = tuple(c for c in _Address.countries if "(" not in c)
JOBS = tuple(dict.fromkeys(
    (" ".join(reversed(j.split(", "))) if ", " in j else j).lower() for j in _Job.jobs))
BUSINESS = _Company.bsWords

TOPICS = (
    "photosynthesis", "the french revolution", "blockchain technology", "climate change", "machine learning",
    "the water cycle", "inflation", "vaccines", "black holes", "democracy", "global supply chains",
    "the stock market", "renewable energy", "online communities", "quantum computing", "the immune system",
    "plate tectonics", "the renaissance", "public key cryptography", "urbanization", "coral reefs",
    "the industrial revolution", "electric cars", "remote work", "sleep", "the human brain", "volcanoes",
    "interest rates", "recycling", "the roman empire", "artificial intelligence", "meditation",
    "ocean currents", "honey bees", "the printing press", "antibiotic resistance", "cloud computing",
    "minimum wage laws", "the olympic games", "jazz music", "deforestation", "space exploration",
    "nuclear power", "the internet", "rainforests", "bilingual education", "video games", "tea culture",
    "the migration of birds", "3d printing", "the cold war", "genetic engineering", "fast fashion",
    "public transport", "the moon landing", "wildfires", "cybersecurity", "coffee production",
    "social media", "the silk road", "gene therapy", "microplastics", "the gig economy", "solar panels",
    "the great depression", "cryptocurrency", "desalination", "the placebo effect", "supply and demand",
    "compound interest", "the theory of evolution", "the scientific method", "fermentation", "tides",
    "the electoral college", "universal basic income", "self-driving cars", "the ozone layer",
    "the periodic table", "impressionist painting", "the gut microbiome", "earthquakes", "hurricanes",
    "the apollo program", "open source software", "mindfulness at work", "food deserts", "urban gardening",
    "the federal reserve", "wind turbines", "the history of chess", "ancient egypt", "the mayan calendar",
    "the human genome project", "algorithmic bias", "carbon taxes", "vertical farming", "the bronze age",
    "the spanish flu", "noise pollution", "the placebo effect in medicine", "fair trade", "microfinance",
    "quantum entanglement", "dark matter", "the big bang", "the water footprint of food", "beekeeping",
)
AUDIENCES = ("a ten-year-old", "a high school student", "a busy executive", "a complete beginner",
             "a retired teacher", "someone who speaks little English", "a skeptical scientist")
FORMS = {  # form of a piece of writing: effort offset
    "haiku": -0.25, "slogan": -0.3, "tagline": -0.3, "tweet": -0.25, "limerick": -0.05, "riddle": 0.1,
    "poem": 0.0, "short story": 0.2, "diary entry": 0.0, "product description": -0.05, "email": -0.1,
    "speech": 0.15, "dialogue": 0.15, "song verse": 0.0, "blog post introduction": 0.0, "fable": 0.15,
    "cover letter": 0.05, "toast": -0.05, "news headline": -0.3, "movie plot summary": 0.1,
}
TONES = ("funny", "formal", "hopeful", "gloomy", "whimsical", "persuasive", "nostalgic", "sarcastic",
         "heartfelt", "mysterious", "optimistic", "urgent", "calm", "playful")
ITEMS = ("apples", "books", "tickets", "marbles", "chairs", "boxes", "pencils", "cookies", "coins", "shirts",
         "stickers", "bottles", "eggs", "notebooks", "plants", "bricks", "cupcakes", "candles", "tiles", "seeds")
LANGS = ("Python", "JavaScript", "Java", "C++", "SQL", "Rust", "Go", "TypeScript", "Bash", "Ruby")
CODE_TASKS = (
    "reverses a string", "checks whether a number is prime", "merges two sorted lists",
    "counts the vowels in a sentence", "finds the second largest value in a list",
    "removes duplicates from an array", "computes the factorial of n", "validates an email address",
    "returns the longest common prefix of a list of words", "converts Celsius to Fahrenheit",
    "parses a date string", "flattens a nested list", "finds all anagrams of a word in a list",
    "computes a moving average", "checks whether a string is a palindrome", "sorts a list of records by age",
    "counts word frequencies in a text", "finds the shortest path in a grid", "rotates a matrix by 90 degrees",
    "generates the first n Fibonacci numbers", "groups transactions by month", "detects a cycle in a linked list",
)
CODE_REQUIREMENTS = ("Handle empty input.", "Add type hints.", "Include unit tests.", "Run in linear time.",
                     "Do not use any library functions.", "Explain the time complexity.",
                     "Make it work for very large inputs.", "Add comments to each step.")
SNIPPETS = (
    "def add(a, b):\n    return a - b", "for i in range(10) print(i)",
    "let total = 0; for (x of xs) total =+ x;", "SELECT name FROM users WHERE age > 30",
    "def mean(xs):\n    return sum(xs) / len(xs)", "while (i < n) { sum += a[i]; }",
    "if x = 5:\n    print('five')", "items.sort(key=lambda r: r['age'], reverse=True)",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)",
    "SELECT city, COUNT(*) FROM orders GROUP BY city HAVING COUNT(*) > 10",
)
PASSAGE_SENTENCES = (
    "Researchers have studied {t} for decades and still disagree about several details.",
    "Many people first hear about {t} at school, but few understand how it works.",
    "The effects of {t} can be seen in everyday life, from prices to habits.",
    "Critics argue that the benefits of {t} are often overstated.",
    "Supporters point to recent data showing steady progress on {t}.",
    "In the last ten years {t} has received a lot of public attention.",
    "Several countries have adopted different policies on {t}.",
    "The debate about {t} continues, and new evidence appears every year.",
    "Experts recommend a careful look at both short and long term consequences.",
    "A recent report described {t} as one of the defining issues of our time.",
    "Local groups in {c} have organised meetings to discuss {t}.",
    "One {j} interviewed for the report said the public rarely hears the full story.",
    "The costs are uneven: some households pay far more than others.",
    "One survey found that most respondents had changed their habits within a year.",
    "The first serious studies of {t} appeared in the early twentieth century.",
    "Teachers say students find {t} easier to grasp with concrete examples.",
)


def pick(rng, options):
    return options[rng.integers(len(options))]


def picks(rng, options, k):
    return [options[i] for i in rng.choice(len(options), k, replace=False)]


def count(rng, probabilities):
    """Draw 0, 1, 2, ... with the given probabilities."""
    return int(rng.choice(len(probabilities), p=probabilities))


def passage(rng, topic, n_sentences):
    chosen = rng.choice(len(PASSAGE_SENTENCES), n_sentences, replace=n_sentences > len(PASSAGE_SENTENCES))
    text = " ".join(PASSAGE_SENTENCES[i].format(t=topic, c=pick(rng, COUNTRIES), j=pick(rng, JOBS))
                    for i in chosen)
    return text[0].upper() + text[1:]


def article(noun):
    return ("an " if noun[0] in "aeiou" else "a ") + noun


@dataclass(frozen=True)
class Ask:
    """One prompt before modifiers: its text, its input and the effort its content asks for."""
    instruction: str
    input: str = ""
    load: float = 0.0


def explain(rng):
    t = pick(rng, TOPICS)
    head = pick(rng, (f"Explain {t}", f"Describe {t}", f"What is {t}? Explain it", f"Give an overview of {t}",
                      f"Help me understand {t}", f"Tell me about {t}", f"Write an explanation of {t}",
                      f"Can you explain {t}", f"Discuss {t}", f"How does {t} work? Explain it"))
    load, parts = 0.0, [head]
    level = count(rng, [0.5, 0.3, 0.2])
    if level == 1:
        parts.append(f"to {pick(rng, AUDIENCES)}")
        load -= 0.1
    elif level == 2:
        parts.append(f"to an experienced {pick(rng, JOBS)}")
        load += 0.15
    aspects = count(rng, [0.45, 0.25, 0.2, 0.1])
    text = " ".join(parts) + "."
    if aspects:
        chosen = picks(rng, ("its causes", "its history", "its effects on daily life", "the main controversies",
                             "how it is measured", "common misconceptions", "its future"), aspects)
        text += " Cover " + ", ".join(chosen[:-1]) + (" and " if aspects > 1 else "") + chosen[-1] + "."
        load += 0.18 * aspects
    if rng.random() < 0.2:
        return Ask(f"Explain what the following passage says about {t} and whether it is accurate.",
                   passage(rng, t, int(rng.integers(2, 6))), load + 0.2)
    return Ask(text, "", load)


def write(rng):
    form, t = pick(rng, tuple(FORMS)), pick(rng, TOPICS + NOUNS)
    opener = pick(rng, ("Write", "Generate", "Create", "Compose", "Come up with", "Draft", "Give me"))
    subject = pick(rng, (f"about {t}", f"for {article(pick(rng, JOBS))}",
                         f"for a company that helps businesses {' '.join(pick(rng, w) for w in BUSINESS)}",
                         f"about {article(pick(rng, ADJECTIVES))} {pick(rng, NOUNS)}",
                         f"set in {pick(rng, COUNTRIES)}"))
    text = f"{opener} {article(pick(rng, TONES))} {form} {subject}."
    load = FORMS[form]
    rules = picks(rng, (("Include the words '{}' and '{}'.", 0.3), ("Every line must rhyme.", 0.35),
                        ("Do not use the letter '{}'.", 0.55), ("Use exactly {} words.", 0.4),
                        ("Start each sentence with the letter '{}'.", 0.45), ("Write it in the second person.", 0.15),
                        ("Make it an acrostic of the word '{}'.", 0.5), ("End with a question.", 0.1)),
                  count(rng, [0.35, 0.3, 0.2, 0.1, 0.05]))
    for rule, weight in rules:
        text += " " + rule.format(*fill_rule(rng, rule))
        load += weight
    if rng.random() < 0.2:
        return Ask(f"{opener} {article(pick(rng, TONES))} reply to the message below.{text[text.find('.') + 1:]}",
                   passage(rng, t if t in TOPICS else pick(rng, TOPICS), int(rng.integers(1, 4))), load + 0.1)
    return Ask(text, "", load)


def fill_rule(rng, rule):
    if "words '" in rule:
        return picks(rng, NOUNS + VERBS, 2)
    if "letter" in rule:
        return [pick(rng, "aeiostrnlc")]
    if "exactly" in rule:
        return [int(rng.integers(20, 120))]
    if "acrostic" in rule:
        return [pick(rng, [n for n in NOUNS if 4 <= len(n) <= 8]).upper()]
    return []


def math_problem(rng):
    """A word problem with one to six operations; each operation is a step of reasoning."""
    name, other, item = pick(rng, NAMES), pick(rng, NAMES), pick(rng, ITEMS)
    steps = 1 + count(rng, [0.25, 0.25, 0.2, 0.15, 0.1, 0.05])
    start = int(rng.integers(5, 300))
    moves = [pick(rng, (f"buys {rng.integers(2, 60)} more", f"gives {rng.integers(1, 5)} to {other}",
                        f"sells {rng.integers(1, 30)} of them", "doubles the number",
                        f"loses a {pick(rng, ('third', 'quarter', 'half'))} of them",
                        f"receives {rng.integers(2, 40)} from {other}",
                        f"packs them into bags of {rng.integers(2, 9)}"))
             for _ in range(steps - 1)]
    style = int(rng.integers(4))
    if style == 0:
        story = f"{name} has {start} {item}." + "".join(f" Then {name} {m}." for m in moves)
        text = story + pick(rng, (f" How many {item} does {name} have now?", f" How many {item} are left?"))
    elif style == 1:
        numbers = [int(x) for x in rng.integers(2, 500, steps + 1)]
        text = pick(rng, ("Calculate the average of ", "Find the mean of ", "What is the average of ")) + \
            ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}."
        steps = max(1, steps // 2)
    elif style == 2:
        rate, hours = int(rng.integers(20, 120)), int(rng.integers(1, 9))
        text = f"A {pick(rng, ('train', 'cyclist', 'truck', 'boat'))} travels at {rate} km/h for {hours} hours" + \
            "".join(f", then at {rng.integers(10, 130)} km/h for {rng.integers(1, 6)} hours" for _ in moves) + \
            pick(rng, (". What distance does it cover?", ". What is its average speed?"))
    else:
        a, b, c = (int(x) for x in rng.integers(2, 90, 3))
        text = pick(rng, (f"Solve for x: {a}x + {b} = {c}", f"Solve the equation {a}x - {b} = {c}x + {a + b}")) + \
            ("" if steps < 3 else f", then compute {pick(rng, ('x squared', '3x + 1', 'x divided by 2'))}") + "."
        steps = min(steps, 3)
    if rng.random() < 0.25:
        numbers = ", ".join(str(int(x)) for x in rng.integers(1, 1000, int(rng.integers(5, 16))))
        return Ask(pick(rng, (f"Find the median and the range of these {item} counts.",
                              f"Sort the {item} counts below and give their sum.",
                              f"Identify the outliers in the daily {item} sales below.")), numbers, 0.3 + 0.1 * steps)
    return Ask(text, "", 0.22 * (steps - 1))


def code(rng):
    lang, task = pick(rng, LANGS), pick(rng, CODE_TASKS)
    if rng.random() < 0.45:
        snippet = pick(rng, SNIPPETS)
        opener = pick(rng, (f"Find and fix the bug in this code that {task}",
                            f"Explain what the code below does and whether it {task}",
                            f"What does this code do? Explain it to {pick(rng, AUDIENCES)}",
                            f"Rewrite the following code to be more readable, in {lang}",
                            f"Identify the error in the given code; it should {task.replace('s ', ' ', 1)}",
                            f"Convert the code below to {lang}"))
        lines = snippet.count("\n") + 1
        return Ask(opener + ".", snippet, 0.15 * math.log(1 + lines))
    opener = pick(rng, (f"Write a {lang} function that {task}.", f"Implement a {lang} program that {task}.",
                        f"Create a function in {lang} which {task}.", f"Generate {lang} code that {task}.",
                        f"Give me a {lang} script that {task}.", f"How would you write code that {task}? Use {lang}."))
    requirements = picks(rng, CODE_REQUIREMENTS, count(rng, [0.35, 0.3, 0.2, 0.1, 0.05]))
    return Ask(" ".join([opener, *requirements]), "", 0.2 * len(requirements))


def listing(rng):
    t, k = pick(rng, TOPICS + NOUNS), int(rng.integers(3, 13))
    text = pick(rng, (f"List {k} facts about {t}.", f"Name {k} things associated with {t}.",
                      f"Give {k} examples of {t} in everyday life.", f"Generate a list of {k} ideas related to {t}.",
                      f"Provide {k} tips for {article(pick(rng, JOBS))}.",
                      f"Suggest {k} names for a {pick(rng, NOUNS)} shop.",
                      f"Brainstorm {k} uses for {article(pick(rng, NOUNS))}.", f"What are {k} benefits of {t}?",
                      f"Identify {k} skills that {article(pick(rng, JOBS))} needs.",
                      f"Come up with {k} questions to ask {article(pick(rng, JOBS))}."))
    load = 0.03 * k
    extras = picks(rng, ((" Give a reason for each.", 0.3), (" Rank them from most to least important.", 0.3),
                         (" Keep each under ten words.", 0.1), (" Group them into two categories.", 0.35)),
                   count(rng, [0.55, 0.3, 0.15]))
    for extra, weight in extras:
        text += extra
        load += weight
    if rng.random() < 0.2:
        about = pick(rng, TOPICS)
        return Ask(pick(rng, (f"List all the nouns in the text below about {about}.",
                              f"Name every place mentioned in the passage on {about}.",
                              f"Identify the verbs in the following text about {about}.")),
                   passage(rng, about, int(rng.integers(1, 5))), load)
    return Ask(text, "", load)


def rewrite(rng):
    n, t = int(rng.integers(1, 7)), pick(rng, TOPICS)
    text = pick(rng, ("Rewrite the following {w} in the passive voice.", "Paraphrase this {w} in simpler words.",
                      "Edit the {w} below to make it more formal.", "Make the following {w} more concise.",
                      "Rewrite the given {w} for {a}.", "Correct the grammar in the {w} below.",
                      "Change the tone of this {w} to be {tone}.", "Turn the {w} below into a list of bullet points.",
                      "Rephrase the following {w} so that {a} can follow it."))
    what = pick(rng, ("text", "passage", f"paragraph about {t}", f"notes on {t}", f"text on {t}"))
    text = text.format(w=what, a=pick(rng, AUDIENCES), tone=pick(rng, TONES))
    return Ask(text, passage(rng, t, n), 0.12 * n)


def classify(rng):
    scheme = pick(rng, (("noun, verb or adjective", NOUNS + VERBS + ADJECTIVES, 0.0),
                        ("positive, negative or neutral", ADJECTIVES, 0.05),
                        ("a country or not a country", COUNTRIES + NOUNS, -0.05),
                        ("living or non-living", NOUNS, 0.0)))
    labels, pool, base = scheme
    n = int(rng.integers(2, 10))
    words = picks(rng, pool, n)
    load = base + 0.08 * n
    if rng.random() < 0.7:
        text = pick(rng, (f"Classify each of the {n} words below as {labels}.",
                          f"Categorize the following {n} words: {labels}?",
                          f"Label each item in the list of {n} as {labels}.",
                          f"Sort these {n} words into groups: {labels}."))
        ask = Ask(text, ", ".join(words), load)
    else:
        text = pick(rng, (f"Is '{words[0]}' {labels}?", f"Determine whether '{words[0]}' is {labels}."))
        ask = Ask(text, "", base)
    if rng.random() < 0.3:
        ask = Ask(ask.instruction + " Explain your choice.", ask.input, ask.load + 0.3)
    return ask


def summarize(rng):
    t, n = pick(rng, TOPICS), int(rng.integers(3, 15))
    text = pick(rng, (f"Summarize the following article about {t}.",
                      f"Write a summary of the text below in {rng.integers(2, 6)} sentences.",
                      f"Give a one paragraph summary of this passage on {t}.",
                      f"What are the main points of the text on {t}?",
                      f"Extract the key arguments from the article below about {t}.",
                      f"Analyze the passage below and identify its main claim about {t}.",
                      f"Read the text and summarize it for {pick(rng, AUDIENCES)}."))
    return Ask(text, passage(rng, t, n), 0.3 * math.log(n / 3))


def compare(rng):
    k = 2 + count(rng, [0.7, 0.2, 0.1])
    things = picks(rng, TOPICS, k)
    joined = ", ".join(things[:-1]) + " and " + things[-1]
    text = pick(rng, (f"Compare {joined}.", f"What are the differences between {joined}?",
                      f"Contrast {joined}, and say which matters more.", f"Evaluate {joined} against each other.",
                      f"Which is more important: {joined}? Argue your case.", f"Write a comparison of {joined}."))
    criteria = picks(rng, ("cost", "impact on health", "effect on the environment", "public opinion",
                           "long-term risk", "history"), count(rng, [0.5, 0.25, 0.15, 0.1]))
    if criteria:
        text += " Consider " + ", ".join(criteria) + "."
    return Ask(text, "", 0.25 * (k - 2) + 0.12 * len(criteria))


def factual(rng):
    country, t = pick(rng, COUNTRIES), pick(rng, TOPICS)
    text = pick(rng, (f"What is the capital of {country}?", f"Who first studied {t}?",
                      f"When did {t} become widely known?",
                      f"Name the official language of {country}.", f"What currency is used in {country}?",
                      f"Define the word '{pick(rng, NOUNS)}'.", f"Give a synonym for '{pick(rng, ADJECTIVES)}'.",
                      f"What is the opposite of '{pick(rng, ADJECTIVES)}'?", f"Suggest a title for a book about {t}.",
                      f"Tell me one fun fact about {country}.",
                      f"Generate a sentence using the verb '{pick(rng, VERBS)}'."))
    return Ask(text, "", 0.0)


def plan(rng):
    days, people = int(rng.integers(1, 8)), int(rng.integers(1, 9))
    text = pick(rng, (f"Plan a {days}-day trip to {pick(rng, COUNTRIES)}.",
                      f"Create a weekly study plan for {pick(rng, TOPICS)}.",
                      f"Design a menu for a dinner party of {people}.",
                      f"Suggest a training schedule for {article(pick(rng, JOBS))}.",
                      f"Make a budget for a family of {people}.",
                      f"Propose a project plan to launch a {pick(rng, NOUNS)} app.",
                      "Develop a marketing strategy for a company that wants to "
                      f"{' '.join(pick(rng, w) for w in BUSINESS)}."))
    limits = picks(rng, ("Keep the total cost under {} dollars.", "One person is vegetarian.",
                         "Avoid travel on weekends.",
                         "Everything must fit in {} hours a week.", "Include a backup option for each step.",
                         "Two people cannot attend on Mondays."), count(rng, [0.35, 0.3, 0.2, 0.15]))
    for limit in limits:
        text += " " + limit.format(int(rng.integers(2, 50)) * 10)
    return Ask(text, "", 0.2 * len(limits))


def puzzle(rng):
    n = int(rng.integers(2, 7))
    names = picks(rng, NAMES, n)
    facts = [f"{names[i]} is taller than {names[i + 1]}." for i in range(n - 1)]
    rng.shuffle(facts)
    style = int(rng.integers(3))
    if style == 0:
        text = " ".join(facts) + pick(rng, (" Who is the shortest?", " Who is the tallest?", " Order them by height."))
    elif style == 1:
        start, ratio = int(rng.integers(1, 6)), int(rng.integers(2, 4))
        shown = [start * ratio ** i + (i if n > 4 else 0) for i in range(n + 1)]
        text = pick(rng, ("Which number comes next: ", "Find the next number in the sequence ",
                          "Continue the pattern: ")) + ", ".join(map(str, shown)) + "?"
    else:
        text = (f"There are {n} boxes labelled {', '.join(names)}. Exactly one holds a {pick(rng, NOUNS)}. "
                + " ".join(f"Box {names[i]} is empty." for i in range(1, n - 1)) + " Which box could hold it?")
    return Ask(text, "", 0.2 * (n - 2))


# Kind: (share of prompts, effort offset). The offsets are small next to what the content adds.
KINDS = {
    "explain": (0.14, 0.15, explain), "write": (0.14, -0.05, write), "math": (0.10, 0.35, math_problem),
    "code": (0.08, 0.25, code), "list": (0.10, -0.35, listing), "rewrite": (0.08, -0.3, rewrite),
    "classify": (0.07, -0.35, classify), "summarize": (0.07, 0.0, summarize), "compare": (0.06, 0.15, compare),
    "factual": (0.08, -0.35, factual), "plan": (0.05, 0.0, plan), "puzzle": (0.03, 0.35, puzzle),
}
FOLLOW_UPS = ("What evidence supports this?", "What are the risks?", "Can you give an example?",
              "What would change in ten years?", "How would you test that?", "Who benefits most?",
              "What is the strongest objection?")
CONDITIONS = ("Assume the reader knows nothing about {t}.", "If a step is uncertain, say how to check it.",
              "Suppose the audience works as {j}.", "If there is more than one answer, give all of them.",
              "Assume a budget of {n} dollars.", "If anything is ambiguous, state your assumption first.")
STYLES = (("Answer in {n} words or fewer.", 0.1), ("Use a {tone} tone.", 0.1), ("Format the answer as a table.", 0.3),
          ("Use bullet points.", 0.05), ("Include one example from {country}.", 0.25),
          ("Quote the part of the prompt each point answers.", 0.3), ("Avoid technical terms.", 0.15),
          ("Mention the word '{noun}' at least once.", 0.15))
# Place the corpus's effort (mean 0.15, sd 0.66) where the trace calibration (corpus.MU, corpus.SCALE) expects it.
EFFORT_GAIN, EFFORT_SHIFT = 1.25, -0.61


def make_prompt(rng):
    """Return (instruction, input, kind, effort) for one prompt."""
    kinds = list(KINDS)
    shares = np.array([KINDS[k][0] for k in kinds])
    kind = kinds[rng.choice(len(kinds), p=shares / shares.sum())]
    _, offset, build = KINDS[kind]
    ask = build(rng)
    instruction, load = ask.instruction, ask.load
    questions = count(rng, [0.75, 0.17, 0.06, 0.02])
    for follow_up in picks(rng, FOLLOW_UPS, questions):
        instruction += " " + follow_up
    styles = picks(rng, STYLES, count(rng, [0.55, 0.28, 0.12, 0.05]))
    for style, weight in styles:
        instruction += " " + style.format(n=int(rng.integers(3, 30)) * 10, tone=pick(rng, TONES),
                                          country=pick(rng, COUNTRIES), noun=pick(rng, NOUNS))
        load += weight
    conditions = count(rng, [0.8, 0.15, 0.05]) if kind != "puzzle" else 0
    for condition in picks(rng, CONDITIONS, conditions):
        instruction += " " + condition.format(t=pick(rng, TOPICS), j=article(pick(rng, JOBS)),
                                              n=int(rng.integers(1, 90)) * 100)
    words = len(prompt_text(instruction, ask.input).split())
    effort = EFFORT_SHIFT + EFFORT_GAIN * (offset + load + 0.3 * questions + 0.3 * conditions
                                          + 0.1 * math.log(max(words, 3) / 15))
    return instruction, ask.input, kind, effort
