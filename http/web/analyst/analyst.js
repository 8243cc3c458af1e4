// The analyst console: runs POST /v1/traces with the analyst's token and
// draws the answer. Every string from the server reaches the page through
// textContent or an attribute, never as markup.
"use strict";
(function () {
  const KEY = "ledger.analyst.token";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_NODES = 400;
  const MAX_ROWS = 2000; // timeline rows drawn; the CSV has every one

  // A token may come in the address (#token=...): kept for this browser
  // session only, and taken out of the address at once.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem(KEY, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function showToken() {
    const t = sessionStorage.getItem(KEY);
    $("token-form").classList.toggle("hidden", !!t);
    $("token-state").classList.toggle("hidden", !t);
    $("token-who").textContent = t ? "Token set for this browser session." : "";
  }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (t) sessionStorage.setItem(KEY, t);
    $("token").value = "";
    showToken();
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); showToken(); });
  showToken();

  // Default window: the last 14 days.
  function localValue(d) {
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  const now = new Date();
  $("to").value = localValue(new Date(now.getTime() + 60000));
  $("from").value = localValue(new Date(now.getTime() - 14 * 86400000));
  const person = new URLSearchParams(location.search).get("person");
  if (person) $("person").value = person;

  function rfc3339(local) { return local ? new Date(local).toISOString() : ""; }

  function showError(text) {
    $("error").textContent = text;
    $("error").classList.toggle("hidden", !text);
  }

  // problemText renders an application/problem+json answer.
  function problemText(status, p) {
    const lines = [`${p.title || "Error"} (${status})`];
    if (p.detail) lines.push(p.detail);
    for (const e of p.errors || []) lines.push(`${e.field || ""}: ${e.reason || e.detail || ""}`);
    return lines.join("\n");
  }

  $("trace-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("");
    const token = sessionStorage.getItem(KEY);
    if (!token) { showError("Enter the analyst token first."); return; }
    const body = {
      from: rfc3339($("from").value),
      to: rfc3339($("to").value),
      depth: Number($("depth").value),
      buffer_minutes: Number($("buffer").value || 0),
      min_overlap_minutes: Number($("overlap").value || 0),
      reason: $("reason").value,
    };
    if ($("asof").value) body.as_of = rfc3339($("asof").value);
    // The index person: by id, or by ID document (the number goes in the
    // request body only; the answer names people by masked name and id).
    if ($("person").value.trim()) body.person_id = $("person").value.trim();
    if ($("idtype").value || $("idnumber").value) { body.id_type = $("idtype").value; body.id_number = $("idnumber").value; }
    $("run").disabled = true;
    try {
      const resp = await fetch("/v1/traces", {
        method: "POST",
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await resp.text();
      let data = null;
      try { data = JSON.parse(text); } catch (_) { /* not JSON */ }
      if (!resp.ok) {
        $("result").classList.add("hidden");
        showError(data ? problemText(resp.status, data) : `Error ${resp.status}`);
        return;
      }
      render(data);
    } catch (e) {
      showError("The ledger did not answer: " + e.message);
    } finally {
      $("run").disabled = false;
    }
  });

  function render(t) {
    $("result").classList.remove("hidden");
    const dl = $("summary");
    dl.replaceChildren();
    const row = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, String(v))); };
    row("Index person", `${t.index.name} (${t.index.person_id})`);
    row("Window", `${t.from} – ${t.to}`);
    row("As of", t.as_of);
    row("Stays of the index person", t.index.visits);
    row("Depth-1 contacts", t.index.contacts);
    row("Depth-2 contacts", t.index.second_contacts);
    row("Audit record", `event ${t.event_id} at position ${t.position} (trace ${t.trace_id})`);
    drawGraph(t);
    drawTimeline(t);
    const link = $("csv");
    if (link.dataset.url) URL.revokeObjectURL(link.dataset.url);
    const url = URL.createObjectURL(new Blob([traceCSV(t)], { type: "text/csv;charset=utf-8" }));
    link.dataset.url = url;
    link.href = url;
    link.setAttribute("download", `trace-${t.trace_id}.csv`);
  }

  // The graph: one node per person, one edge per (via, contact) pair with
  // the venues of their overlaps.
  function drawGraph(t) {
    const nodes = new Map();
    nodes.set(t.index.person_id, { id: t.index.person_id, name: t.index.name, depth: 0, children: [] });
    const edges = new Map();
    for (const c of t.contacts) {
      if (!nodes.has(c.person_id)) {
        if (nodes.size >= MAX_NODES) continue;
        nodes.set(c.person_id, { id: c.person_id, name: c.name, depth: c.depth, via: c.via_person_id, children: [] });
      }
      const key = c.via_person_id + ">" + c.person_id;
      if (!edges.has(key)) edges.set(key, { from: c.via_person_id, to: c.person_id, venues: new Set() });
      edges.get(key).venues.add(c.venue_name);
    }
    for (const n of nodes.values()) {
      if (n.depth > 0 && nodes.has(n.via)) nodes.get(n.via).children.push(n);
    }
    const W = 900, H = 640, cx = W / 2, cy = H / 2;
    const first = [...nodes.values()].filter((n) => n.depth === 1);
    const orphans = [...nodes.values()].filter((n) => n.depth === 2 && !nodes.has(n.via));
    const root = nodes.get(t.index.person_id);
    root.x = cx; root.y = cy;
    const r1 = first.length > 0 ? Math.min(200, 60 + first.length * 6) : 0, r2 = 280;
    first.forEach((n, i) => {
      const a = (2 * Math.PI * i) / first.length - Math.PI / 2;
      n.a = a; n.x = cx + r1 * Math.cos(a); n.y = cy + r1 * Math.sin(a);
      const sector = (2 * Math.PI) / Math.max(first.length, 1);
      n.children.forEach((m, j) => {
        const b = a - sector / 2 + (sector * (j + 0.5)) / n.children.length;
        m.x = cx + r2 * Math.cos(b); m.y = cy + r2 * Math.sin(b);
      });
    });
    orphans.forEach((m, j) => {
      const b = (2 * Math.PI * j) / orphans.length;
      m.x = cx + (r2 + 20) * Math.cos(b); m.y = cy + (r2 + 20) * Math.sin(b);
    });
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "contacts graph" });
    const labels = edges.size <= 40;
    for (const e of edges.values()) {
      const a = nodes.get(e.from), b = nodes.get(e.to);
      if (!a || !b || a.x === undefined || b.x === undefined) continue;
      const g = svg("g", { class: "edge-group" });
      const venues = [...e.venues].join(", ");
      const line = svg("line", { class: "edge", x1: a.x, y1: a.y, x2: b.x, y2: b.y });
      line.append(svg("title", {}, venues));
      g.append(line);
      if (labels) g.append(svg("text", { class: "edge-label", x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 3, "text-anchor": "middle" }, venues));
      s.append(g);
    }
    for (const n of nodes.values()) {
      if (n.x === undefined) continue;
      const g = svg("g", { class: `node depth-${n.depth}`, "data-person-id": n.id });
      const c = svg("circle", { cx: n.x, cy: n.y, r: n.depth === 0 ? 12 : n.depth === 1 ? 8 : 6 });
      c.append(svg("title", {}, `${n.name} ${n.id} (depth ${n.depth})`));
      g.append(c);
      if (nodes.size <= 60 || n.depth === 0) g.append(svg("text", { x: n.x + 10, y: n.y + 4 }, n.name));
      s.append(g);
    }
    const box = $("graph");
    box.replaceChildren(s);
    if (nodes.size >= MAX_NODES) box.append(el("p", { class: "note" }, `Showing the first ${MAX_NODES} people; the CSV has them all.`));
  }

  // The timeline: the index person's stays, then every overlap, each as a
  // bar within the trace's window.
  function drawTimeline(t) {
    const from = Date.parse(t.from), to = Date.parse(t.to), span = Math.max(to - from, 1);
    const table = el("table");
    const head = el("tr");
    for (const h of ["who", "depth", "via", "venue", "start", "end", "minutes", "in the window"]) head.append(el("th", {}, h));
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    const bar = (start, end) => {
      const td = el("td", { class: "bar" }), track = el("div", { class: "track" });
      const left = Math.max(0, (Date.parse(start) - from) / span), right = Math.min(1, (Date.parse(end) - from) / span);
      const sp = el("div", { class: "span" });
      sp.style.left = (left * 100).toFixed(2) + "%";
      sp.style.width = (Math.max(right - left, 0) * 100).toFixed(2) + "%";
      track.append(sp);
      td.append(track);
      return td;
    };
    for (const v of t.visits) {
      const tr = el("tr", { class: "tl-row index" });
      const minutes = Math.round((Date.parse(v.end) - Date.parse(v.start)) / 60000);
      tr.append(el("td", {}, t.index.name), el("td", {}, "0"), el("td", {}, ""), el("td", {}, v.venue_name),
        el("td", {}, v.start), el("td", {}, v.end), el("td", {}, String(minutes)), bar(v.start, v.end));
      body.append(tr);
    }
    const names = new Map([[t.index.person_id, t.index.name]]);
    for (const c of t.contacts) names.set(c.person_id, c.name);
    const rows = [...t.contacts].sort((a, b) => a.overlap_start.localeCompare(b.overlap_start)).slice(0, MAX_ROWS);
    for (const c of rows) {
      const tr = el("tr", { class: `tl-row contact depth-${c.depth}` });
      tr.append(el("td", {}, c.name), el("td", {}, String(c.depth)), el("td", {}, names.get(c.via_person_id) || c.via_person_id),
        el("td", {}, c.venue_name), el("td", {}, c.overlap_start), el("td", {}, c.overlap_end), el("td", {}, String(c.overlap_minutes)),
        bar(c.overlap_start, c.overlap_end));
      body.append(tr);
    }
    table.append(body);
    $("timeline").replaceChildren(table);
    if (t.contacts.length > MAX_ROWS) {
      $("timeline").append(el("p", { class: "note" }, `Showing the first ${MAX_ROWS} of ${t.contacts.length} overlaps; the CSV has them all.`));
    }
  }

  // traceCSV writes the answer as the trace route's text/csv answer does:
  // the same header and rows, names kept from being read as formulas,
  // RFC 4180 quoting, times to the second.
  function traceCSV(t) {
    const header = ["person_id", "name", "depth", "via_person_id", "venue_id", "venue_name", "overlap_start", "overlap_end", "overlap_minutes"];
    const formula = (s) => (s !== "" && "=+-@\t\r".includes(s[0]) ? "'" + s : s);
    const seconds = (s) => s.replace(/\.\d+(?=Z|[+-]\d\d:\d\d$)/, "");
    const field = (s) => (/[",\r\n]/.test(s) || /^\s/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s);
    const lines = [header.join(",")];
    for (const c of t.contacts) {
      lines.push([c.person_id, formula(c.name), String(c.depth), c.via_person_id, c.venue_id, formula(c.venue_name),
        seconds(c.overlap_start), seconds(c.overlap_end), String(c.overlap_minutes)].map(field).join(","));
    }
    return lines.join("\n") + "\n";
  }
})();
