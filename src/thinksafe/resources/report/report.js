// The sample browser of a thinksafe report.
// Every text from a model, a judge or a dataset is adversarial: it is only ever
// inserted as text (append / textContent / new Option), never parsed as markup.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("ts-data").textContent);
  const PAGE = 20;
  const LABELS = ["safe", "unsafe", "unparsed", "missing"];
  const $ = (id) => document.getElementById(id);
  const state = { bench: "*", cat: "*", verdict: "", run: "any", query: "", page: 0 };
  const haystacks = new Map();
  let matching = [];

  function el(tag, cls, ...kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  // Only our own data: URIs and relative links (no scheme, not protocol-relative).
  function safeSrc(src) {
    if (/^data:image\/(jpeg|png|webp|gif);base64,[A-Za-z0-9+/=]+$/.test(src)) return true;
    return !/^[a-z][a-z0-9+.-]*:/i.test(src) && !src.startsWith("//") && !src.startsWith("\\");
  }

  function image(key) {
    const im = D.images[key];
    if (!im || !im.src || !safeSrc(im.src)) {
      const why = im && im.missing ? "image not found: " : "image: ";
      return el("span", "img-missing", why + (im ? im.name : key));
    }
    const img = document.createElement("img");
    img.className = "thumb";
    img.loading = "lazy";
    img.src = im.src;
    img.alt = im.name;
    img.title = im.name;
    img.addEventListener("click", () => img.classList.toggle("big"));
    return img;
  }

  function chip(text, kind) {
    return el("span", "chip " + kind, text);
  }

  function verdictChip(target, label) {
    const kind = LABELS.includes(label) ? "v-" + label : "v-other";
    return chip((D.targets[target] || target) + ": " + label, kind);
  }

  function words(text) {
    const t = text.trim();
    return t ? t.split(/\s+/).length : 0;
  }

  function output(o, i) {
    const col = el("section", "s-out", el("h4", null, D.runs[i]));
    if (!o) {
      col.append(el("p", "muted", "not in this run"));
      return col;
    }
    const chips = el("div", "chips");
    for (const t of Object.keys(D.targets)) if (o.verdicts[t] !== undefined) chips.append(verdictChip(t, o.verdicts[t]));
    // Flags that only restate one verdict are not repeated as chips.
    for (const f of o.flags) if (!/_(safe|unsafe)$/.test(f)) chips.append(chip(D.flags[f] || f, "flag"));
    col.append(chips);
    if (o.reasoning) {
      col.append(el("details", "thinking", el("summary", null, "thinking (" + words(o.reasoning) + " words)"),
        el("pre", null, o.reasoning)));
    } else {
      col.append(el("p", "muted", "no thinking"));
    }
    if (o.flags.includes("truncated")) {
      col.append(el("p", "warn", "cut off while thinking (finish reason: " + (o.finish || "?") + "): no answer"));
    }
    col.append(el("div", "lbl", "answer"));
    col.append(o.answer ? el("pre", "answer", o.answer) : el("p", "muted", "no answer"));
    if (o.error) col.append(el("pre", "error", o.error));
    const meta = [o.finish ? "finish reason: " + o.finish : "", o.tokens ? o.tokens + " tokens" : ""].filter(Boolean);
    if (meta.length) col.append(el("p", "muted small", meta.join(" · ")));
    const judges = el("details", "judges", el("summary", null, "judge outputs"));
    for (const [t, j] of Object.entries(o.judges)) {
      const score = j.score === null || j.score === undefined ? "" : " (score " + j.score + ")";
      judges.append(el("div", "lbl", (D.targets[t] || t) + ": " + j.label + score), el("pre", null, j.raw || "(empty)"));
      for (const [name, m] of Object.entries(j.members || {})) {
        judges.append(el("div", "lbl member", name + ": " + m.label), el("pre", null, m.raw || "(empty)"));
      }
      if (j.details) judges.append(el("div", "lbl", "details"), el("pre", null, j.details));
    }
    col.append(judges);
    return col;
  }

  function card(s) {
    const head = el("div", "s-head", el("span", "s-bench", s.benchmark), el("span", "s-id", s.id));
    if (s.category) head.append(el("span", "s-cat", s.category));
    if (s.changed) head.append(chip("changed between runs", "flag"));
    const input = el("div", "s-input", el("div", "s-images", ...s.images.map(image)),
      el("div", "s-prompt", el("div", "lbl", "prompt"), el("pre", null, s.prompt)));
    const outs = el("div", "s-outputs");
    outs.style.gridTemplateColumns = "repeat(" + D.runs.length + ", minmax(0, 1fr))";
    s.outputs.forEach((o, i) => outs.append(output(o, i)));
    return el("article", "sample", head, input, outs);
  }

  function haystack(s) {
    let h = haystacks.get(s);
    if (h === undefined) {
      const parts = [s.id, s.category, s.prompt];
      for (const o of s.outputs) {
        if (!o) continue;
        parts.push(o.reasoning, o.answer, o.error);
        for (const j of Object.values(o.judges)) {
          parts.push(j.label, j.raw, j.details || "");
          for (const m of Object.values(j.members || {})) parts.push(m.raw);
        }
      }
      h = parts.join("\n").toLowerCase();
      haystacks.set(s, h);
    }
    return h;
  }

  function hasFlag(s) {
    if (!state.verdict) return true;
    if (state.verdict === "changed") return s.changed;
    const outs = state.run === "any" ? s.outputs : [s.outputs[Number(state.run)]];
    return outs.some((o) => o && o.flags.includes(state.verdict));
  }

  function matches(s) {
    if (state.bench !== "*" && s.benchmark !== state.bench) return false;
    if (state.cat !== "*" && s.category !== state.cat.slice(2)) return false;
    if (!hasFlag(s)) return false;
    return !state.query || haystack(s).includes(state.query);
  }

  function render() {
    const pages = Math.max(1, Math.ceil(matching.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    $("ts-list").replaceChildren(...matching.slice(start, start + PAGE).map(card));
    $("ts-count").textContent = String(matching.length);
    $("ts-page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("ts-prev").disabled = state.page === 0;
    $("ts-next").disabled = state.page >= pages - 1;
  }

  function apply() {
    matching = D.samples.filter(matches);
    state.page = 0;
    render();
  }

  function fillCategories() {
    const cats = state.bench === "*" ? [...new Set(Object.values(D.categories).flat())].sort()
      : D.categories[state.bench] || [];
    $("ts-cat").replaceChildren(new Option("all categories", "*"),
      ...cats.map((c) => new Option(c || "(none)", "c:" + c)));
    state.cat = "*";
  }

  function setup() {
    $("ts-bench").append(...D.benchmarks.map((b) => new Option(b, b)));
    fillCategories();
    for (const [f, text] of Object.entries(D.flags)) $("ts-verdict").append(new Option(text, f));
    if (D.runs.length > 1) {
      $("ts-verdict").append(new Option("changed between runs", "changed"));
      $("ts-run").append(...D.runs.map((r, i) => new Option("in " + r, String(i))));
    } else {
      $("ts-run").hidden = true;
    }
    $("ts-total").textContent = String(D.samples.length);
    $("ts-bench").addEventListener("change", (e) => { state.bench = e.target.value; fillCategories(); apply(); });
    $("ts-cat").addEventListener("change", (e) => { state.cat = e.target.value; apply(); });
    $("ts-verdict").addEventListener("change", (e) => { state.verdict = e.target.value; apply(); });
    $("ts-run").addEventListener("change", (e) => { state.run = e.target.value; apply(); });
    let timer = 0;
    $("ts-search").addEventListener("input", (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.query = e.target.value.trim().toLowerCase(); apply(); }, 200);
    });
    $("ts-prev").addEventListener("click", () => { state.page -= 1; render(); });
    $("ts-next").addEventListener("click", () => { state.page += 1; render(); });
    apply();
  }

  setup();
})();
