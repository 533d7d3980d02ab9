"""The built-in `chat` suite: 30 varied instructions written for moa, so `moa bench chat` works
with no file at hand. They mix writing, reasoning, coding, advice, explanation and extraction,
the kinds of turns a terminal chat gets, at lengths a judge can compare."""

CHAT_PROMPTS = [
    "Explain the difference between a process and a thread to someone who has just learned to program.",
    "Write a limerick about a cat who learns to use a terminal.",
    "A train leaves at 14:10 and arrives at 17:45, with a 20-minute stop on the way. How long was it moving?",
    "Give me three arguments for and three against working fully remotely, as a short balanced list.",
    "Write a Python function that returns the n-th Fibonacci number in O(log n) time, and explain why it is fast.",
    "Summarise the causes of the 2008 financial crisis in one paragraph a teenager could follow.",
    "I have eggs, spinach, feta and a stale baguette. Suggest a dinner and give the steps.",
    "What is the difference between `git merge` and `git rebase`, and when would you choose each?",
    "Draft a polite email declining a meeting invitation and proposing two other times.",
    "Translate into French, keeping the tone casual: 'Hey, running ten minutes late, save me a seat!'",
    "Is 1001 a prime number? Show the reasoning.",
    "Explain what a Mixture-of-Agents is in machine learning, in under 120 words.",
    "Write a haiku about debugging at 3 a.m.",
    "Compare SQLite and PostgreSQL for a small web app with one server. Which would you pick and why?",
    "My sourdough bread comes out dense. List the most likely causes and what to change for each.",
    "Write a bash one-liner that finds the ten largest files under the current directory, and explain each part.",
    "What were the main achievements of Ada Lovelace? Keep it factual and brief.",
    "Plan a three-day walking itinerary for a first visit to Lisbon on a modest budget.",
    "Explain Big-O notation with one everyday analogy and one code example.",
    "Rewrite this sentence to be clearer: 'Due to the fact that the meeting was postponed by us, the "
    "deadline, which was previously agreed upon, is now moved.'",
    "Three boxes are labelled apples, oranges, and mixed, and every label is wrong. You may take one fruit "
    "from one box. How do you relabel them correctly?",
    "What is the difference between weather and climate? Give an example of each.",
    "Write a short, encouraging note to a colleague whose project was just cancelled.",
    "Explain how public-key cryptography lets two strangers agree on a secret over an open channel.",
    "Give five tips for writing good commit messages, each with a one-line example.",
    "Extract every date from this text as ISO 8601: 'We met on March 3rd, 2021, again on 4/7/2022 "
    "(US format), and last on the 1st of January 2024.'",
    "Write a SQL query that returns, for each customer, their most recent order, from tables "
    "customers(id, name) and orders(id, customer_id, created_at, total).",
    "Why is the sky blue but sunsets red? Answer in two short paragraphs.",
    "Invent a board game for two players that takes ten minutes to play. Give the rules.",
    "What questions should I ask before accepting a job offer at a startup? List the ten most important.",
]
