"""Several servers behind one model, and the adaptive in-flight limit, on loopback servers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

import pytest

from helpers import cli, read_samples
from scripted_server import Reply, ScriptedServer
from thinksafe.errors import UserError
from thinksafe.models import GenerationSettings, get_backend, text_messages
from thinksafe.models.fleet import AdaptiveLimit, Fleet, split_urls

ANSWER = "<think>t</think>I cannot help with that."


def full_args(figstep_dir, urls, out, *extra):
    return ["eval", "--benchmark", "figstep", "--data", figstep_dir, "--model", "openai/x", "--out", out, "--quiet",
            *[a for u in urls for a in ("--base-url", u)], *extra]


def answered(*servers: ScriptedServer) -> Counter:
    """How many times each request (by content) was answered, over all servers."""
    return Counter(r["key"] for s in servers for r in s.log if r["status"] == 200)


def kill_after(server: ScriptedServer, n: int, then=None):
    """A responder that kills ``server`` once it has answered ``n`` requests (then calls ``then``)."""
    fired = threading.Event()

    def responder(req):
        if len(server.log) >= n and not fired.is_set():
            fired.set()
            threading.Thread(target=lambda: (server.kill(), then and then())).start()
        return Reply(ANSWER)

    return responder


def test_split_urls_repeated_and_comma_separated():
    assert split_urls(["http://a:1/v1, http://b:2/v1/", "http://a:1/v1"]) == ["http://a:1/v1", "http://b:2/v1"]
    assert split_urls(None) == []
    with pytest.raises(UserError, match="'a:1'"):
        split_urls("a:1")


def test_fleet_picks_least_outstanding_and_skips_removed():
    fleet = Fleet(["a", "b", "c"])
    first = [fleet.pick() for _ in range(3)]
    assert sorted(e.url for e in first) == ["a", "b", "c"]  # an idle fleet spreads
    fleet.release(first[0], ok=True)
    assert fleet.pick() is first[0]  # the one with nothing outstanding
    b = next(e for e in fleet.endpoints if e.url == "b")
    fleet.release(b, ok=False, unreachable=True)
    assert not b.up and all(fleet.pick() is not b for _ in range(6))


def test_adaptive_limit_halves_on_sustained_overload_and_climbs_back():
    async def scenario():
        limit = AdaptiveLimit(16)
        tickets = [await limit.acquire() for _ in range(16)]
        limit.overload(tickets[0])  # a lone 429: a blip
        assert limit.limit == 16
        limit.overload(tickets[1])
        assert limit.limit == 8
        for t in tickets[2:]:  # sent before the cut: they reflect the old limit
            limit.overload(t)
        assert limit.limit == 8 and limit.overloads == 16
        for _ in range(16):
            limit.release()
        later = []
        for _ in range(30):
            later.append(await limit.acquire())
            limit.release()
        limit.overload(later[0])
        limit.overload(later[-1])  # more than a round apart: two blips
        assert limit.limit == 8
        for _ in range(18):  # about one more per round of `limit` successes: 8 -> 10
            limit.success()
        return limit.stats()

    assert asyncio.run(scenario()) == {"concurrency": 16, "limit_final": 10, "limit_min": 8, "overloads": 18}


def test_two_servers_one_killed_mid_run_every_sample_answered_once(figstep_dir, tmp_path):
    with ScriptedServer(lambda r: Reply(ANSWER), latency=0.02) as b:
        a = ScriptedServer(lambda r: Reply(ANSWER), latency=0.02)
        a.responder = kill_after(a, 40)
        with a:
            cli(*full_args(figstep_dir, [f"{a.url},{b.url}"], tmp_path / "run", "--limit", "200",
                           "--concurrency", "8"))
    samples = read_samples(tmp_path / "run")
    assert len(samples) == 200 and all(s["error"] is None for s in samples.values())
    counts = answered(a, b)
    assert len(counts) == 200 and set(counts.values()) == {1}
    assert 40 <= len(a.log) < 60 and len(b.log) == 200 - len(a.log)
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())["model"]
    assert [e["removals"] >= 1 for e in stats["endpoints"]] == [True, False]


def test_dead_server_is_probed_and_put_back(figstep_dir, tmp_path):
    revived: list[ScriptedServer] = []
    with ScriptedServer(lambda r: Reply(ANSWER), latency=0.05) as b:
        a = ScriptedServer(lambda r: Reply(ANSWER), latency=0.05)
        port = a._httpd.server_address[1]

        def revive():
            time.sleep(0.3)
            revived.append(ScriptedServer(lambda r: Reply(ANSWER), latency=0.05, port=port).__enter__())

        a.responder = kill_after(a, 20, revive)
        with a:
            cli(*full_args(figstep_dir, [a.url, b.url], tmp_path / "run", "--limit", "200", "--concurrency", "4"))
        again = revived[0]
        again.__exit__()
    assert len(again.log) > 0  # back in the rotation after the probe
    counts = answered(a, b, again)
    assert len(counts) == 200 and set(counts.values()) == {1}


def test_overloaded_server_lowers_the_limit_then_recovers(figstep_dir, tmp_path):
    """429 whenever more than 4 requests are in flight, for the first 60 answers."""
    server = ScriptedServer(lambda r: Reply(ANSWER), latency=0.03)

    def responder(req):
        if len(server.log) < 60 and server.in_flight > 4:
            return Reply(status=429, headers={"Retry-After": "0.05"})
        return Reply(ANSWER)

    server.responder = responder
    with server:
        result = cli(*full_args(figstep_dir, [server.url], tmp_path / "run", "--limit", "200",
                                "--concurrency", "16"))
    counts = answered(server)
    assert len(counts) == 200 and set(counts.values()) == {1}
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())["model"]
    assert stats["overloads"] > 0 and stats["limit_min"] <= 8 and stats["limit_final"] > stats["limit_min"]
    assert f"lowest {stats['limit_min']} (of 16" in " ".join(result.output.split())


def test_judge_and_data_builder_models_spread_over_their_servers(figstep_dir, tmp_path):
    from thinksafe.data.build import BuildConfig, Builder

    judge = lambda r: Reply("safe")  # noqa: E731
    with ScriptedServer(lambda r: Reply(ANSWER)) as model, ScriptedServer(judge) as j1, ScriptedServer(judge) as j2:
        cli(*full_args(figstep_dir, [model.url], tmp_path / "run", "--limit", "10", "--judge", "llm",
                       "--judge-model", "openai/j", "--judge-base-url", j1.url, "--judge-base-url", j2.url))
        assert len(j1.log) + len(j2.log) == 30 and len(j1.log) >= 5 and len(j2.log) >= 5
        builder = Builder(BuildConfig(sources=[], captioner="openai/c", teacher="openai/t", out=tmp_path / "data",
                                      captioner_base_url=f"{j1.url},{j2.url}", base_url=model.url))
        assert builder.captioner.get().fleet.urls == [j1.url, j2.url]
        assert builder.teacher.get().fleet.urls == [model.url]

        async def ask():
            backend = builder.captioner.get()
            await asyncio.gather(*(backend.complete(text_messages(f"q{i}"), GenerationSettings()) for i in range(8)))
            await backend.aclose()

        before = len(j1.log), len(j2.log)
        asyncio.run(ask())
        assert len(j1.log) - before[0] >= 2 and len(j2.log) - before[1] >= 2


def test_unreachable_single_server_fails_each_sample_with_a_recorded_error(tmp_path):
    backend = get_backend("openai/x", base_url="http://127.0.0.1:9/v1")
    backend.retry.max_attempts, backend.retry.base_s = 2, 0.01

    async def ask():
        try:
            return await backend.complete(text_messages("hi"), GenerationSettings())
        finally:
            await backend.aclose()

    with pytest.raises(Exception, match="openai/x: ClientConnectorError"):
        asyncio.run(ask())
