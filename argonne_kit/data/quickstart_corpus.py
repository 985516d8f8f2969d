"""A procedurally generated corpus of simple stories, facts and sums, written for this project.

The text is original (templates and word lists below), deterministic for a seed, and regular
enough that a sub-million-parameter model visibly learns it in a few CPU minutes: names and
objects introduced early recur later in the same story, animal sounds and sums are consistent.
Some stories open with "Long long time ago", the original pipeline's sample prompt.
"""

from __future__ import annotations

import random

NAMES = [
    "Mia",
    "Tom",
    "Lily",
    "Ben",
    "Anna",
    "Sam",
    "Nora",
    "Leo",
    "Ella",
    "Max",
    "Rosa",
    "Finn",
    "Ivy",
    "Jack",
    "Zoe",
    "Owen",
    "Ruby",
    "Theo",
    "Lucy",
    "Noah",
]
ANIMALS = {
    "cat": "meow",
    "dog": "woof",
    "duck": "quack",
    "cow": "moo",
    "owl": "hoot",
    "frog": "ribbit",
    "sheep": "baa",
    "horse": "neigh",
    "mouse": "squeak",
    "bee": "buzz",
    "lion": "roar",
    "pig": "oink",
}
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown", "white", "gold"]
OBJECTS = ["ball", "kite", "hat", "box", "cup", "book", "boat", "drum", "lamp", "key", "shoe", "bell"]
PLACES = ["park", "garden", "forest", "beach", "farm", "river", "hill", "school", "market", "lake"]
FEELINGS = ["happy", "tired", "brave", "curious", "proud", "excited", "calm", "hungry"]
WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "snowy", "cloudy"]
FOODS = ["apples", "bread", "soup", "cake", "carrots", "cheese", "berries", "rice"]
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
OPENINGS = ["Long long time ago", "Once upon a time", "One day", "Long ago"]


def a(word: str) -> str:
    """The word with its indefinite article."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def story(rng: random.Random) -> str:
    """One short story whose characters and object stay consistent from start to end."""
    hero, friend = rng.sample(NAMES, 2)
    animal, friend_animal = rng.sample(sorted(ANIMALS), 2)
    color, thing = rng.choice(COLORS), rng.choice(OBJECTS)
    place, other_place = rng.sample(PLACES, 2)
    feeling, day, food = rng.choice(FEELINGS), rng.choice(WEATHER), rng.choice(FOODS)
    lines = [
        f"{rng.choice(OPENINGS)}, there was a little {animal} named {hero}.",
        f"{hero} lived near the {place} with a friend, {friend} the {friend_animal}.",
        f"One {day} day, {hero} found {a(color)} {thing} in the {place}.",
        f'"Look at this {color} {thing}!" said {hero}. "{ANIMALS[animal].capitalize()}!"',
    ]
    twist = rng.randrange(3)
    if twist == 0:
        lines += [
            f'{friend} said, "{ANIMALS[friend_animal].capitalize()}! Can I play with the {thing} too?"',
            f"{hero} said yes, and they played with the {color} {thing} all day.",
            f"They were very {feeling}.",
        ]
    elif twist == 1:
        lines += [
            f"But the wind took the {thing} to the {other_place}.",
            f"{hero} and {friend} walked to the {other_place} to find it.",
            f"{friend} saw the {color} {thing} first and gave it back to {hero}.",
            f'{hero} said, "Thank you, {friend}!"',
        ]
    else:
        lines += [
            f"{hero} was {feeling}, so {hero} went home to eat some {food}.",
            f"{friend} came too, and they shared the {food}.",
            f"After lunch, they put the {color} {thing} on a shelf.",
        ]
    lines.append(
        rng.choice(
            [
                f"From that day on, {hero} and {friend} were best friends. The end.",
                f"And {hero} kept the {color} {thing} forever. The end.",
                f"That night, {hero} dreamed about the {color} {thing}. The end.",
            ]
        )
    )
    return " ".join(lines)


def facts(rng: random.Random) -> str:
    """A short list of animal sounds and colours."""
    animals = rng.sample(sorted(ANIMALS), 4)
    parts = [f"{a(x).capitalize()} says {ANIMALS[x]}." for x in animals]
    name, color, thing = rng.choice(NAMES), rng.choice(COLORS), rng.choice(OBJECTS)
    parts.append(f"{name} has {a(color)} {thing}. The {thing} is {color}.")
    return "Animal facts. " + " ".join(parts)


def sums(rng: random.Random) -> str:
    """A few small additions, in digits and in words."""
    out = []
    for _ in range(4):
        a, b = rng.randrange(7), rng.randrange(6)
        out.append(
            f"{a} plus {b} is {a + b}. {NUMBER_WORDS[a].capitalize()} and {NUMBER_WORDS[b]} make {NUMBER_WORDS[a + b]}."
        )
    return "Counting with numbers. " + " ".join(out)


def document(rng: random.Random) -> str:
    """A document of 1–3 paragraphs: mostly stories, some facts and sums."""
    pieces = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        pieces.append(story(rng) if kind < 0.7 else facts(rng) if kind < 0.85 else sums(rng))
    return "\n\n".join(pieces)


def generate(num_docs: int, seed: int) -> list[str]:
    """``num_docs`` documents, identical for the same seed on any machine."""
    rng = random.Random(seed)
    return [document(rng) for _ in range(num_docs)]
