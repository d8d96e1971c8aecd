// The dashboard's only script. Every string from the store (step names, log lines, reasons,
// flow names) reaches the page as text: through textContent and setAttribute, never through
// innerHTML. The two pictures (graph, timeline) are SVG drawn by chronum's render code on the
// server; they are parsed as XML, stripped of anything active, and then adopted.
"use strict";
(function () {
  const TOKEN_KEY = "chronum-token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  let colors = {};

  // The token arrives once, in the URL fragment (never sent to a server), and is kept for
  // this tab only.
  function takeToken() {
    const found = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (found) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(found[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }
  const token = takeToken();

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }
  const main = () => document.getElementById("main");
  function show(...nodes) { main().replaceChildren(...nodes); }

  class ApiError extends Error {}
  async function api(path, options) {
    const init = Object.assign({ headers: {} }, options || {});
    init.headers["Authorization"] = "Bearer " + token;
    const response = await fetch(path, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const why = body && body.error ? body.error : response.status + " " + response.statusText;
      throw new ApiError(why);
    }
    return body;
  }
  function failure(error) {
    const text = error instanceof ApiError && /token/.test(error.message)
      ? "A token is needed: open the address `chronum serve` printed (it ends in #token=...)."
      : String(error.message || error);
    return el("p", { class: "error", text });
  }

  function throttle(fn, ms) {
    let timer = null, again = false;
    return function run() {
      if (timer) { again = true; return; }
      fn();
      timer = setTimeout(() => { timer = null; if (again) { again = false; run(); } }, ms);
    };
  }

  // One WebSocket per page; reconnects, and with a run filter asks for what it missed.
  function follow(params, onEvent) {
    let lastSeq = null, closed = false, socket = null;
    function open() {
      const query = new URLSearchParams(params);
      if (params.run && lastSeq !== null) query.set("after", String(lastSeq));
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(scheme + "//" + location.host + "/ws/events?" + query.toString());
      socket.onopen = () => {
        socket.send(JSON.stringify({ token }));
        document.getElementById("live").classList.add("on");
      };
      socket.onmessage = (message) => {
        // One message: the events one poll found, one JSON object a line.
        for (const line of message.data.split("\n")) {
          if (!line) continue;
          const event = JSON.parse(line);
          if (typeof event.seq === "number") lastSeq = event.seq;
          onEvent(event);
        }
      };
      socket.onclose = () => {
        document.getElementById("live").classList.remove("on");
        if (!closed) setTimeout(open, 1000);
      };
    }
    open();
    return () => { closed = true; if (socket) socket.close(); };
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return date.toLocaleString();
  }
  function seconds(value) {
    if (value === null || value === undefined) return "";
    const n = Number(value);
    if (n < 60) return n.toFixed(2) + " s";
    if (n < 3600) return (n / 60).toFixed(1) + " min";
    return (n / 3600).toFixed(1) + " h";
  }
  function badge(state) {
    const span = el("span", { class: "state", "data-state": state, text: state });
    span.style.background = colors[state] || "#eeeeee";
    return span;
  }
  function runLink(id) { return el("a", { href: "/runs/" + encodeURIComponent(id), text: id }); }
  function flowLink(name) { return el("a", { href: "/flows/" + encodeURIComponent(name), text: name }); }
  function table(columns, rows, makeRow) {
    const head = el("tr", {}, ...columns.map((c) => el("th", { text: c })));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows.map(makeRow)));
  }

  // Pictures drawn by the server: parsed as XML, never as HTML, and stripped of anything
  // that could run (scripts, foreign content, event handlers, javascript: links).
  function adoptSvg(text) {
    const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
    const root = parsed.documentElement;
    if (!root || root.nodeName !== "svg") return el("p", { class: "muted", text: "(no picture)" });
    for (const bad of root.querySelectorAll("script, foreignObject, iframe, object, embed")) bad.remove();
    for (const node of [root, ...root.querySelectorAll("*")]) {
      for (const attr of [...node.attributes]) {
        const name = attr.name.toLowerCase();
        if (name.startsWith("on") || (/href$/.test(name) && /^\s*javascript:/i.test(attr.value))) {
          node.removeAttribute(attr.name);
        }
      }
    }
    return document.importNode(root, true);
  }

  // -- the runs page ------------------------------------------------------------------------
  async function runsPage() {
    const query = new URLSearchParams(location.search);
    const flow = query.get("flow") || "", status = query.get("status") || "";
    const since = query.get("since") || "", offset = Number(query.get("offset") || 0);
    const limit = 50;
    const listBox = el("div", {}), flowsBox = el("div", { class: "flows" });
    const flowSelect = el("select", { name: "flow" }, el("option", { value: "", text: "every flow" }));
    const statusSelect = el("select", { name: "status" }, el("option", { value: "", text: "every status" }));
    for (const s of ["running", "succeeded", "failed", "cancelled", "interrupted"]) {
      statusSelect.append(el("option", { value: s, text: s, selected: s === status ? "selected" : null }));
    }
    const sinceInput = el("input", { type: "datetime-local", name: "since", value: since ? since.slice(0, 16) : null });
    const apply = el("button", { text: "Filter", onclick: () => {
      const next = new URLSearchParams();
      if (flowSelect.value) next.set("flow", flowSelect.value);
      if (statusSelect.value) next.set("status", statusSelect.value);
      if (sinceInput.value) next.set("since", new Date(sinceInput.value).toISOString());
      location.search = next.toString();
    } });
    show(el("h1", { text: "Runs" }), flowsBox,
         el("div", { class: "filters" }, flowSelect, statusSelect, el("label", {}, "since ", sinceInput), apply),
         listBox);

    async function loadFlows() {
      const body = await api("/api/flows");
      colors = body.colors || colors;
      const known = new Set([...flowSelect.options].map((o) => o.value));
      for (const f of body.flows) {
        if (!known.has(f.flow)) flowSelect.append(el("option", { value: f.flow, text: f.flow, selected: f.flow === flow ? "selected" : null }));
      }
      flowsBox.replaceChildren(...body.flows.map(flowCard));
    }
    async function loadRuns() {
      const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
      if (flow) params.set("flow", flow);
      if (status) params.set("status", status);
      if (since) params.set("since", since);
      const body = await api("/api/runs?" + params.toString());
      const rows = table(["run", "flow", "status", "started", "duration", "steps", "failed", "resumes run"], body.runs, (r) =>
        el("tr", { "data-run": r.run_id }, el("td", {}, runLink(r.run_id)), el("td", {}, flowLink(r.flow)),
           el("td", {}, badge(r.status)), el("td", { text: when(r.started_at) }),
           el("td", { text: seconds(r.duration_s) }), el("td", { text: r.n_steps }),
           el("td", { text: r.n_failed }), el("td", {}, r.parent_run_id ? runLink(r.parent_run_id) : "")));
      const page = (o) => { const next = new URLSearchParams(location.search); next.set("offset", String(o)); return "?" + next.toString(); };
      const pager = el("div", { class: "pager" },
        offset > 0 ? el("a", { href: page(Math.max(0, offset - limit)), text: "← newer" }) : null,
        el("span", { class: "muted", text: `${body.total ? offset + 1 : 0}–${offset + body.runs.length} of ${body.total}` }),
        offset + limit < body.total ? el("a", { href: page(offset + limit), text: "older →" }) : null);
      listBox.replaceChildren(rows, pager);
    }
    const refresh = throttle(() => { loadFlows().catch(() => {}); loadRuns().catch((e) => listBox.replaceChildren(failure(e))); }, 300);
    try { await loadFlows(); await loadRuns(); } catch (e) { listBox.replaceChildren(failure(e)); return; }
    follow({}, (event) => { if (event.kind === "run.started" || event.kind === "run.finished" || event.kind === "step.failed") refresh(); });
  }

  function flowCard(f) {
    const dots = el("div", {});
    for (const r of f.runs) {
      const dot = el("a", { class: "dot", href: "/runs/" + encodeURIComponent(r.run_id), title: `${r.run_id}: ${r.status}` });
      dot.style.background = colors[r.status] || "#eeeeee";
      dots.append(dot);
    }
    return el("div", { class: "flowcard", "data-flow": f.flow }, flowLink(f.flow), dots, sparkline(f.runs.map((r) => r.duration_s)));
  }

  function sparkline(values, width, height) {
    width = width || 160; height = height || 28;
    const svg = svgEl("svg", { width, height, class: "sparkline" });
    const known = values.map((v) => (v === null || v === undefined ? null : Number(v)));
    const present = known.filter((v) => v !== null);
    const low = Math.min(...present), high = Math.max(...present);
    const span = high - low;
    const step = known.length > 1 ? width / (known.length - 1) : 0;
    const points = [];
    known.forEach((v, i) => {
      const y = span > 0 ? height - 2 - ((v - low) / span) * (height - 4) : height / 2;
      if (v !== null) points.push(`${(i * step).toFixed(1)},${y.toFixed(1)}`);
    });
    svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: "#3a6ea5", "stroke-width": 1.5 }));
    return svg;
  }

  // -- the run page -------------------------------------------------------------------------
  async function runPage(runId) {
    const head = el("div", {}), actions = el("div", { class: "actions" }), note = el("p", { class: "muted" });
    const graphBox = el("div", { class: "graph", id: "graph" }), stepsBox = el("div", { id: "steps" });
    const timelineBox = el("div", { class: "timeline", id: "timeline" });
    const logTitle = el("h2", { text: "Log" }), logBox = el("pre", { class: "log", id: "log" });
    show(head, actions, note, el("h2", { text: "Graph" }), graphBox, el("h2", { text: "Steps" }), stepsBox,
         el("h2", { text: "Timeline" }), timelineBox, logTitle, logBox);
    let run = null, nodes = new Map(), selected = null, logOffset = 0, logTimer = null;

    function paintGraph(steps) {
      for (const s of steps) {
        const node = nodes.get(s.step);
        if (!node) continue;
        node.setAttribute("data-state", s.status);
        for (const shape of node.querySelectorAll("polygon, path, rect, ellipse")) shape.style.fill = colors[s.status] || "#ffffff";
      }
    }
    function renderHead() {
      head.replaceChildren(
        el("h1", {}, "Run ", el("span", { id: "run-id", text: run.run_id })),
        el("p", { class: "meta" },
          el("span", {}, "flow ", flowLink(run.flow)),
          el("span", { id: "run-status" }, badge(run.status)),
          el("span", { text: "started " + when(run.started_at) }),
          el("span", { text: run.duration_s !== null ? "took " + seconds(run.duration_s) : "" }),
          run.parent_run_id ? el("span", {}, "resumes ", runLink(run.parent_run_id)) : null,
          run.resumes.length ? el("span", {}, "resumed by ", ...run.resumes.flatMap((r, i) => [i ? ", " : "", runLink(r.run_id)])) : null));
      const buttons = [];
      if (run.status === "running" || run.status === "interrupted") {
        buttons.push(el("button", { class: "danger", id: "cancel", text: "Cancel", onclick: () => act("cancel") }));
      }
      if (["failed", "cancelled", "interrupted"].includes(run.status)) {
        buttons.push(el("button", { id: "resume", text: "Resume", onclick: () => act("resume") }));
      }
      actions.replaceChildren(...buttons);
    }
    async function act(verb) {
      if (!window.confirm(`${verb === "cancel" ? "Cancel" : "Resume"} run ${run.run_id}?`)) return;
      for (const b of actions.querySelectorAll("button")) b.disabled = true;
      try {
        const body = await api(`/api/runs/${encodeURIComponent(run.run_id)}/${verb}`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ confirm: run.run_id }) });
        note.textContent = body.message;
      } catch (e) { note.replaceChildren(failure(e)); }
      refresh();
    }
    function renderSteps() {
      stepsBox.replaceChildren(table(["step", "state", "attempts", "duration", "exit", "reason", "cached from"], run.steps, (s) => {
        const row = el("tr", { class: "clickable" + (s.step === selected ? " selected" : ""), "data-step": s.step, "data-state": s.status },
          el("td", { text: s.step }), el("td", {}, badge(s.status)), el("td", { text: s.attempts }),
          el("td", { text: seconds(s.duration_s) }), el("td", { text: s.exit_code === null ? "" : s.exit_code }),
          el("td", { text: s.reason || "" }), el("td", {}, s.cached_from ? runLink(s.cached_from) : ""));
        row.addEventListener("click", () => openLog(s.step));
        return row;
      }));
    }
    function openLog(step) {
      selected = step; logOffset = 0; logBox.replaceChildren();
      logTitle.textContent = "Log of " + step;
      logBox.setAttribute("data-step", step);
      renderSteps();
      if (logTimer) clearTimeout(logTimer);
      pollLog();
    }
    async function pollLog() {
      const step = selected;
      try {
        const body = await api(`/api/runs/${encodeURIComponent(runId)}/logs/${encodeURIComponent(step)}?offset=${logOffset}`);
        if (step !== selected) return;
        logOffset = body.offset;
        const lines = body.text.split("\n");
        if (lines.length && lines[lines.length - 1] === "") lines.pop();
        for (const line of lines) {
          logBox.append(el("div", { class: line.startsWith("--- attempt ") ? "attempt" : "line", text: line }));
        }
        if (lines.length) logBox.scrollTop = logBox.scrollHeight;
      } catch (e) { logBox.append(el("div", { class: "error", text: String(e.message || e) })); return; }
      const live = run && (run.status === "running" || ["running", "retrying", "pending"].includes((run.steps.find((s) => s.step === step) || {}).status));
      logTimer = setTimeout(pollLog, live ? 400 : 2000);
    }
    async function loadTimeline() {
      const body = await api(`/api/runs/${encodeURIComponent(runId)}/timeline`);
      timelineBox.replaceChildren(adoptSvg(body.svg));
    }
    async function load() {
      run = await api(`/api/runs/${encodeURIComponent(runId)}`);
      colors = run.colors || colors;
      renderHead(); renderSteps(); paintGraph(run.steps);
      if (!selected) {
        const first = run.steps.find((s) => s.status === "running" || s.status === "retrying") || run.steps.find((s) => s.status !== "pending");
        if (first) openLog(first.step);
      }
    }
    const refresh = throttle(() => { load().catch((e) => note.replaceChildren(failure(e))); }, 250);
    const refreshTimeline = throttle(() => { loadTimeline().catch(() => {}); }, 1000);
    try { await load(); } catch (e) { show(failure(e)); return; }
    document.title = "Chronum run " + run.run_id;
    api(`/api/runs/${encodeURIComponent(runId)}/graph`).then((body) => {
      if (!body.svg) { graphBox.replaceChildren(el("p", { class: "muted", text: "(graphviz is not installed: no graph)" })); return; }
      const svg = adoptSvg(body.svg);
      graphBox.replaceChildren(svg);
      nodes = new Map([...svg.querySelectorAll("g.node[data-step]")].map((g) => [g.getAttribute("data-step"), g]));
      paintGraph(run.steps);
    }).catch((e) => graphBox.replaceChildren(failure(e)));
    loadTimeline().catch(() => {});
    follow({ run: run.run_id }, (event) => {
      refresh();
      if (event.kind !== "step.log" && event.kind !== "step.spawned") refreshTimeline();
    });
    // While the run runs, its running attempts' bars grow with the clock.
    const ticker = setInterval(() => {
      if (run && run.status === "running") refreshTimeline(); else clearInterval(ticker);
    }, 1000);
  }

  // -- the flow page ------------------------------------------------------------------------
  async function flowPage(name) {
    let body;
    try { body = await api("/api/flows/" + encodeURIComponent(name)); } catch (e) { show(failure(e)); return; }
    colors = body.colors || colors;
    const runs = body.runs;
    // Oldest on the left; the y axis starts at 0 and is labelled, so a dot reads as a duration.
    const width = 640, height = 180, left = 56, right = 12, topPad = 12, bottom = 28;
    const plotW = width - left - right, plotH = height - topPad - bottom;
    const chart = svgEl("svg", { width, height, class: "durations", role: "img",
      "aria-label": `durations of the last ${runs.length} runs of ${body.flow}` });
    const top = Math.max(1e-9, ...runs.map((r) => Number(r.duration_s || 0)));
    const yOf = (v) => topPad + plotH - (v / top) * plotH;
    for (const v of [0, top / 2, top]) {
      const y = yOf(v).toFixed(1);
      chart.append(svgEl("line", { x1: left, x2: width - right, y1: y, y2: y, class: v ? "grid" : "axis" }));
      const label = svgEl("text", { x: left - 6, y: (Number(y) + 4).toFixed(1), "text-anchor": "end", class: "tick" });
      label.textContent = seconds(v);
      chart.append(label);
    }
    for (const [text, x, anchor] of [["older", left, "start"], ["newer", width - right, "end"]]) {
      const label = svgEl("text", { x, y: height - 8, "text-anchor": anchor, class: "tick" });
      label.textContent = text;
      chart.append(label);
    }
    runs.forEach((r, i) => {
      if (r.duration_s === null) return;
      const x = runs.length > 1 ? left + 6 + (i * (plotW - 12)) / (runs.length - 1) : left + plotW / 2;
      const link = svgEl("a", { href: "/runs/" + encodeURIComponent(r.run_id), "data-run": r.run_id });
      const dot = svgEl("circle", { cx: x.toFixed(1), cy: yOf(Number(r.duration_s)).toFixed(1), r: 4, fill: colors[r.status] || "#999", stroke: "#555" });
      const title = svgEl("title", {}); title.textContent = `${r.run_id}: ${r.status}, ${seconds(r.duration_s)}`;
      dot.append(title); link.append(dot); chart.append(link);
    });
    const rates = table(["step", "runs", "failed", "failure rate"], body.steps, (s) => {
      const bar = el("span", { class: "bar" }); bar.style.width = Math.round(100 * (s.failure_rate || 0)) + "px";
      return el("tr", { "data-step": s.step }, el("td", { text: s.step }), el("td", { text: s.runs }), el("td", { text: s.failed }),
        el("td", {}, bar, " ", s.failure_rate === null ? "" : (100 * s.failure_rate).toFixed(0) + " %"));
    });
    const slow = table(["step", "mean", "max"], body.slowest, (s) =>
      el("tr", {}, el("td", { text: s.step }), el("td", { text: seconds(s.mean_s) }), el("td", { text: seconds(s.max_s) })));
    show(el("h1", {}, "Flow ", el("span", { text: body.flow })),
         el("p", {}, el("a", { href: "/?flow=" + encodeURIComponent(body.flow), text: "its runs" })),
         el("h2", { text: `Durations of the last ${runs.length} runs` }), chart,
         el("div", { class: "columns" }, el("div", {}, el("h2", { text: "Failure rate per step" }), rates),
            el("div", {}, el("h2", { text: "Slowest steps (mean of successes)" }), slow)));
    document.title = "Chronum flow " + body.flow;
  }

  function route() {
    const path = location.pathname;
    if (path.startsWith("/runs/")) return runPage(decodeURIComponent(path.slice(6)));
    if (path.startsWith("/flows/")) return flowPage(decodeURIComponent(path.slice(7)));
    return runsPage();
  }
  route();
})();
