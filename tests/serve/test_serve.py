"""`python main.py serve` driven by the official `openai` client over loopback, with the tiny Gemma 4.

The server runs under the offline guard (any non-loopback connection would be refused and
reported), exactly as a user starts it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.support.cli import assert_one_line_error, model_args, run
from tests.support.serve import ServeProc, png_data_url, wav_base64
from tests.support.tiny_model import write_model

MODEL = "tiny-gemma4"


@pytest.fixture(scope="module")
def server(tiny_model):
    s = ServeProc(*model_args(tiny_model), "--port", "0", "--max-body-mb", "1")
    yield s
    err = s.stop()
    assert "OFFLINE-GUARD BLOCKED" not in err and "Traceback" not in err, err


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused-on-loopback", max_retries=0, timeout=120)


def _post(url: str, body: bytes, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + "/chat/completions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_list_names_the_loaded_model(client):
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_whole_and_streamed_agree_and_count_tokens(client):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, temperature=0)
    text = r.choices[0].message.content
    assert text and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    pieces, usage = [], None
    for chunk in client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, temperature=0,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        else:
            usage = chunk.usage
    assert len([p for p in pieces if p]) > 1  # it really streamed, piece by piece
    assert "".join(pieces) == text  # greedy: the same answer either way
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens
    # the same prompt again: all but the last prompt token came from the engine's prefix cache
    assert usage.prompt_tokens_details.cached_tokens >= usage.prompt_tokens - 2


def test_stop_string_and_max_tokens(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count."}],
                                       max_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
    full = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Go on."}],
                                          max_tokens=12, temperature=0).choices[0].message.content
    word = full.split()[1] if len(full.split()) > 1 else full.split()[0]
    cut = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Go on."}],
                                         max_tokens=12, temperature=0, stop=[word]).choices[0].message.content
    assert word not in cut and full.startswith(cut)


def test_image_and_audio_parts(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in the picture?"},
        {"type": "image_url", "image_url": {"url": png_data_url(), "detail": "low"}}]}])
    text_only = client.chat.completions.create(model=MODEL, max_tokens=4, messages=[
        {"role": "user", "content": "What is in the picture?"}])
    assert r.usage.prompt_tokens >= text_only.usage.prompt_tokens + 70  # the image's tokens (at least 70)
    r = client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": wav_base64(2.0), "format": "wav"}},
        {"type": "text", "text": "Transcribe."}]}])
    assert r.usage.prompt_tokens >= 50  # 2 s of audio = 50 tokens (25 a second)


def test_json_schema_answer_parses_and_matches(client):
    schema = {"type": "object", "properties": {"count": {"type": "integer"}, "ok": {"type": "boolean"},
                                               "colour": {"enum": ["red", "green", "blue"]}},
              "required": ["count", "ok", "colour"], "additionalProperties": False}
    r = client.chat.completions.create(model=MODEL, max_tokens=120, messages=[
        {"role": "user", "content": "Describe it."}],
        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}})
    data = json.loads(r.choices[0].message.content)
    assert set(data) == {"count", "ok", "colour"}
    assert isinstance(data["count"], int) and isinstance(data["ok"], bool) and data["colour"] in schema[
        "properties"]["colour"]["enum"]
    r = client.chat.completions.create(model=MODEL, max_tokens=120, response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "Anything."}])
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_bad_requests_get_clear_errors_and_the_server_keeps_answering(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found" and MODEL in e.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": 42}])
    assert e.value.body["param"] == "messages[0].content"
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens="9")
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:  # a picture that is not one
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}])
    assert e.value.body["code"] == "invalid_image"
    with pytest.raises(openai.BadRequestError) as e:  # offline: nothing is fetched
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/cat.png"}}]}])
    assert e.value.body["code"] == "remote_url_refused"
    with pytest.raises(openai.BadRequestError) as e:  # audio that does not decode
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "bm90IGF1ZGlvIGF0IGFsbA==", "format": "mp3"}}]}])
    assert e.value.body["code"] == "invalid_audio"
    with pytest.raises(openai.APIStatusError) as e:  # over the 1 MB limit this server was given
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 1_200_000}])
    assert e.value.status_code == 413 and e.value.body["code"] == "request_too_large"
    status, body = _post(server.url, b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    # still serving
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "still there?"}],
                                       max_tokens=2)
    assert r.usage.completion_tokens >= 1


def test_repeated_long_prompt_reuses_the_prefix(client, server):
    long = " ".join(f"line {i}: the budget for item {i} was approved." for i in range(120))
    msgs = [{"role": "user", "content": long + "\nSummarize."}]
    first = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=2, temperature=0)
    again = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=2, temperature=0)
    assert first.usage.prompt_tokens > 1000
    assert first.usage.prompt_tokens_details.cached_tokens < 100
    assert again.usage.prompt_tokens_details.cached_tokens >= again.usage.prompt_tokens - 2


def test_client_disconnect_cancels_its_request(client, server):
    seen = len(server.lines)
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Talk on."}],
                                            max_tokens=3500, stream=True,
                                            extra_body={"ignore_eos": True})
    got = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            got += 1
            if got == 3:
                break
    stream.close()  # the client goes away mid-answer
    line = server.wait_line(", cancelled", 60, after=seen)
    generated = int(line.split(" generated")[0].rsplit(", ", 1)[1])
    assert generated < 3500
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "next"}], max_tokens=2)
    assert r.usage.completion_tokens >= 1


def test_media_refused_without_a_projector_and_token_checked(tmp_path):
    """A model served without its mmproj (Minutely refuses an mmproj lacking audio or vision, so a
    model without any is how a server cannot hear): audio and images are refused in plain words."""
    model = write_model(tmp_path / "text-only.gguf")
    s = ServeProc("--model", str(model), "--threads", "1", "--ctx", "2048", "--port", "0",
                  "--token", "s3cret-token")
    try:
        anonymous = openai.OpenAI(base_url=s.url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            anonymous.models.list()
        status, body = _post(s.url, json.dumps({"model": "text-only", "messages": []}).encode())
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        c = openai.OpenAI(base_url=s.url, api_key="s3cret-token", max_retries=0)
        assert [m.id for m in c.models.list()] == ["text-only"]
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="text-only", messages=[{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": wav_base64(), "format": "wav"}}]}])
        assert e.value.body["code"] == "audio_not_supported" and "cannot hear" in e.value.body["message"]
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="text-only", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": png_data_url()}}]}])
        assert e.value.body["code"] == "vision_not_supported"
        r = c.chat.completions.create(model="text-only", max_tokens=2, messages=[{"role": "user", "content": "and?"}])
        assert r.usage.completion_tokens >= 1
    finally:
        err = s.stop()
    assert "OFFLINE-GUARD BLOCKED" not in err, err


def test_beyond_loopback_needs_a_token(tiny_model):
    p = run("serve", "--host", "0.0.0.0", "--port", "0", *model_args(tiny_model), guard=True, timeout=60)
    assert_one_line_error(p, 2)
    assert "bearer token" in p.stderr and "0.0.0.0" in p.stderr


def test_a_client_that_leaves_before_a_whole_answer_cancels_it_too(server):
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(server.url)
    seen = len(server.lines)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = json.dumps({"model": MODEL, "max_tokens": 3500, "ignore_eos": True,
                       "messages": [{"role": "user", "content": "Talk on and on."}]})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    conn.close()  # gone before the answer
    line = server.wait_line(", cancelled", 60, after=seen)
    assert int(line.split(" generated")[0].rsplit(", ", 1)[1]) < 3500
    status, err = 0, {}
    try:
        urllib.request.urlopen(server.url + "/no/such/thing", timeout=10)
    except urllib.error.HTTPError as e:
        status, err = e.code, json.loads(e.read())
    assert status == 404 and err["error"]["code"] == "not_found"
