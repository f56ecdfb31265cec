#!/usr/bin/env python3
"""lumen serve driven by the official `openai` Python client, unchanged, pointed at the
server by its base URL.

Starts the server itself on a free loopback port (--port 0) and checks: chat and
completions, streaming and not (the streamed text equals the whole answer), stop sequences,
seed reproducibility, JSON-schema output that validates with `jsonschema`, usage counts
(against `lumen tokenize`), logprobs, errors as the client's exception types, the API key,
16 concurrent streams whose greedy outputs equal the same requests run alone, and clients
that drop mid-stream (their sequences are freed, /metrics shows it, the server goes on).

    LUMEN_BIN=build/lumen LUMEN_MODEL=models/....gguf python3 tests/serve/test_openai_client.py
Needs: pip install -r scripts/py_requirements.txt
"""
import http.client
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import unittest

import jsonschema
import openai

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LUMEN = os.environ.get("LUMEN_BIN", os.path.join(ROOT, "build", "lumen"))
MODEL = os.environ.get("LUMEN_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
ALIAS = "smollm2"


class Server:
    """`lumen serve --port 0 ...` in the background; the port comes from its log."""

    def __init__(self, *args, env=None):
        e = dict(os.environ)
        e.pop("LUMEN_API_KEY", None)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [LUMEN, "serve", "-m", MODEL, "--port", "0", "-t", "2", "--alias", ALIAS, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=e)
        self.log = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("the server exited:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("the server did not start")
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def client(self, key="unused", **kw):
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=600, **kw)

    def metrics(self, key=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", "/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=120)
        self.drain.join(timeout=10)  # the log reaches its end with the process
        self.proc.stderr.close()
        assert rc == 0, f"exit status {rc}\n" + "".join(self.log)


def count_tokens(text):
    """Prompt tokens as the CLI counts them (an independent path through the tokenizer)."""
    out = subprocess.run([LUMEN, "tokenize", "-m", MODEL, "--ids", "-p", text],
                         capture_output=True, text=True, check=True).stdout
    return len(out.split())


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "age": {"type": "integer"},
        "city": {"enum": ["Paris", "London", "Tokyo"]},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
        "employed": {"type": "boolean"},
        "height_m": {"type": ["number", "null"]},
    },
    "required": ["name", "age", "city", "hobbies", "employed"],
    "additionalProperties": False,
}

ORDER = {
    "$defs": {
        "item": {
            "type": "object",
            "properties": {"sku": {"type": "string", "maxLength": 12},
                           "qty": {"type": "integer"},
                           "price": {"type": "number"}},
            "required": ["sku", "qty", "price"],
        }
    },
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "maxLength": 16},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 2},
        "status": {"anyOf": [{"const": "open"}, {"const": "shipped"}, {"type": "null"}]},
    },
    "required": ["order_id", "items", "status"],
}


class OpenAIClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--parallel", "16", "--ctx", "1024")
        cls.c = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def chat(self, content, **kw):
        kw.setdefault("temperature", 0)
        return self.c.chat.completions.create(
            model=ALIAS, messages=[{"role": "user", "content": content}], **kw)

    # -- basics ---------------------------------------------------------------------------

    def test_models(self):
        ids = [m.id for m in self.c.models.list()]
        self.assertEqual(ids, [ALIAS])
        self.assertEqual(self.c.models.retrieve(ALIAS).owned_by, "lumen")

    def test_chat(self):
        r = self.chat("What is the capital of France?", max_tokens=24)
        self.assertIn("Paris", r.choices[0].message.content)
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertEqual(r.object, "chat.completion")
        self.assertTrue(r.system_fingerprint.startswith("fp_"))
        u = r.usage
        self.assertEqual(u.total_tokens, u.prompt_tokens + u.completion_tokens)

    def test_chat_stream_equals_whole(self):
        args = dict(max_tokens=40, temperature=0)
        whole = self.chat("Name three colors.", **args)
        chunks = list(self.chat("Name three colors.", stream=True,
                                stream_options={"include_usage": True}, **args))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
        self.assertEqual(finals[-1], whole.choices[0].finish_reason)
        self.assertEqual(chunks[-1].choices, [])  # the usage chunk
        self.assertEqual(chunks[-1].usage.completion_tokens, whole.usage.completion_tokens)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)
        self.assertTrue(all(ch.usage is None for ch in chunks[:-1]))

    def test_completions_and_stream(self):
        args = dict(model=ALIAS, prompt="The three primary colors are", max_tokens=20,
                    temperature=0)
        whole = self.c.completions.create(**args)
        self.assertEqual(whole.object, "text_completion")
        text = "".join(ch.choices[0].text for ch in self.c.completions.create(stream=True, **args))
        self.assertEqual(text, whole.choices[0].text)
        echo = self.c.completions.create(echo=True, **args)
        self.assertEqual(echo.choices[0].text, args["prompt"] + whole.choices[0].text)

    # -- stop, seed, usage, logprobs -----------------------------------------------------

    def test_stop_sequences(self):
        args = dict(model=ALIAS, prompt="Count: 1, 2, 3, 4, 5,", max_tokens=24, temperature=0,
                    extra_body={"ignore_eos": True})
        full = self.c.completions.create(**args).choices[0].text
        self.assertIn(" 8", full)
        cut = self.c.completions.create(stop=[" 8", "never"], **args)
        self.assertEqual(cut.choices[0].text, full[:full.index(" 8")])
        self.assertEqual(cut.choices[0].finish_reason, "stop")
        # streamed: the stop text never leaks out, even split over tokens
        text = "".join(ch.choices[0].text
                       for ch in self.c.completions.create(stop=" 8", stream=True, **args))
        self.assertEqual(text, cut.choices[0].text)

    def test_seed_reproducibility(self):
        args = dict(max_tokens=32, temperature=1.0, top_p=1.0)
        a = self.chat("Write a sentence about the sea.", seed=1234, **args)
        b = self.chat("Write a sentence about the sea.", seed=1234, **args)
        self.assertEqual(a.choices[0].message.content, b.choices[0].message.content)
        others = {self.chat("Write a sentence about the sea.", seed=s, **args)
                  .choices[0].message.content for s in (1, 2, 3)}
        self.assertGreater(len(others), 1, "different seeds gave the same text three times")

    def test_usage_counts(self):
        prompt = "The quick brown fox jumps over the lazy dog"
        r = self.c.completions.create(model=ALIAS, prompt=prompt, max_tokens=7, temperature=0,
                                      logprobs=1, extra_body={"ignore_eos": True})
        self.assertEqual(r.usage.prompt_tokens, count_tokens(prompt))
        self.assertEqual(r.usage.completion_tokens, 7)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(len(r.choices[0].logprobs.tokens), 7)
        self.assertEqual("".join(r.choices[0].logprobs.tokens), r.choices[0].text)

    def test_logprobs(self):
        r = self.chat("Say hello.", max_tokens=8, logprobs=True, top_logprobs=3)
        content = r.choices[0].logprobs.content
        self.assertEqual(len(content), r.usage.completion_tokens)
        for tok in content:
            tops = [t.logprob for t in tok.top_logprobs]
            self.assertEqual(len(tops), 3)
            self.assertEqual(tops, sorted(tops, reverse=True))
            self.assertAlmostEqual(tok.logprob, tops[0], places=5)  # greedy takes the top
            self.assertLessEqual(tok.logprob, 0)
            # normalised over the whole vocabulary: the top 3 cannot hold more than all of it
            self.assertLessEqual(sum(math.exp(t) for t in tops), 1 + 1e-5)
            self.assertEqual(bytes(tok.bytes).decode("utf-8", "replace"), tok.token)

    # -- structured output ---------------------------------------------------------------

    def test_json_schema_output_validates(self):
        for name, schema, ask in (("person", PERSON, "Describe a fictional person."),
                                  ("order", ORDER, "Make up a shop order.")):
            for seed in (1, 2):
                r = self.chat(ask, max_tokens=200, temperature=0.8, seed=seed,
                              response_format={"type": "json_schema", "json_schema": {
                                  "name": name, "schema": schema, "strict": True}})
                self.assertEqual(r.choices[0].finish_reason, "stop", r.choices[0].message.content)
                doc = json.loads(r.choices[0].message.content)
                jsonschema.validate(doc, schema)

    def test_json_object_parses(self):
        r = self.chat("Give me a JSON object describing a cat.", max_tokens=300,
                      response_format={"type": "json_object"})
        if r.choices[0].finish_reason == "stop":
            self.assertIsInstance(json.loads(r.choices[0].message.content), dict)
        else:  # cut by max_tokens: still a prefix of an object
            self.assertTrue(r.choices[0].message.content.startswith("{"))

    # -- errors --------------------------------------------------------------------------

    def test_errors(self):
        with self.assertRaises(openai.BadRequestError) as e:
            self.chat("hi", temperature=5)
        self.assertEqual(e.exception.status_code, 400)
        self.assertEqual(e.exception.body["param"], "temperature")
        with self.assertRaises(openai.NotFoundError) as e:
            self.c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.body["code"], "model_not_found")
        with self.assertRaises(openai.BadRequestError) as e:
            self.c.completions.create(model=ALIAS, prompt="word " * 2000)
        self.assertEqual(e.exception.body["code"], "context_length_exceeded")
        with self.assertRaises(openai.BadRequestError) as e:
            self.chat("hi", response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "integer", "minimum": 0}}})
        self.assertIn("'minimum' is not supported", e.exception.body["message"])

    # -- many clients ----------------------------------------------------------------------

    def test_concurrent_streams_match_alone(self):
        """16 simultaneous streams with different prompts all complete, and each greedy
        output equals the same request run alone (batch invariance)."""
        topics = ["the sea", "mountains", "a cat", "coffee", "trains", "rain", "a library",
                  "the moon", "bread", "music", "winter", "a garden", "bicycles", "clocks",
                  "the desert", "bees"]
        args = dict(max_tokens=24, temperature=0, extra_body={"ignore_eos": True})
        alone = [self.chat(f"Write one sentence about {t}.", **args).choices[0].message.content
                 for t in topics]
        results = [None] * len(topics)
        errors = []

        def run(i):
            try:
                s = self.chat(f"Write one sentence about {topics[i]}.", stream=True, **args)
                results[i] = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
            except Exception as ex:  # noqa: BLE001 - reported below
                errors.append(repr(ex))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(topics))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        diff = [(topics[i], alone[i], results[i]) for i in range(len(topics)) if alone[i] != results[i]]
        self.assertEqual(diff, [], "batched greedy output differs from the output alone")

    def test_disconnects_free_their_sequence(self):
        before = self.srv.metrics()
        key = 'lumen_requests_finished_total{reason="cancelled"}'
        body = json.dumps({"model": ALIAS, "prompt": "Once upon a time", "max_tokens": 500,
                           "stream": True, "ignore_eos": True})
        conns = []
        for _ in range(4):
            c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
            c.request("POST", "/v1/completions", body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.readline().startswith(b"data: "))  # it is streaming
            conns.append((c, r))
        for c, r in conns:  # hang up mid-stream
            r.close()
            c.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            m = self.srv.metrics()
            if m[key] >= before[key] + 4 and m["lumen_slots_active"] == 0:
                break
            time.sleep(0.1)
        self.assertGreaterEqual(m[key], before[key] + 4)
        self.assertEqual(m["lumen_slots_active"], 0)
        self.assertIn("Paris", self.chat("What is the capital of France?", max_tokens=16)
                      .choices[0].message.content)


class ApiKey(unittest.TestCase):
    def test_key(self):
        srv = Server("--parallel", "1", env={"LUMEN_API_KEY": "sk-lumen"})
        try:
            with self.assertRaises(openai.AuthenticationError):
                srv.client("wrong").models.list()
            self.assertEqual([m.id for m in srv.client("sk-lumen").models.list()], [ALIAS])
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
