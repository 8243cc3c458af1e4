// The check-in ledger's dashboard: one EventSource on /v1/dashboard/stream,
// rendered with DOM calls only (textContent and attributes), so no string
// from the server is ever read as markup.
"use strict";

(function () {
  const KEY = "ledger.dashboard.token";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let source = null;

  // A token in the address (#token=...) is kept in this tab's session and
  // taken out of the address at once.
  function tokenFromHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    const t = h.get("token");
    if (t) {
      sessionStorage.setItem(KEY, t.trim());
      h.delete("token");
      const rest = h.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    }
    return sessionStorage.getItem(KEY);
  }

  function district() {
    return $("district").value;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function fmt(n) {
    return Number(n || 0).toLocaleString();
  }

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = cls || "";
  }

  function showLogin(message) {
    stop();
    $("board").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setStatus("no token", "down");
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
  }

  // connect opens the stream; when it fails, one plain request tells a bad
  // token (401/403: ask again) from an outage (EventSource retries itself).
  function connect() {
    stop();
    const tok = sessionStorage.getItem(KEY);
    if (!tok) {
      showLogin();
      return;
    }
    $("login").hidden = true;
    const q = new URLSearchParams({ access_token: tok });
    if (district()) q.set("district", district());
    source = new EventSource("/v1/dashboard/stream?" + q.toString());
    source.addEventListener("summary", (e) => {
      setStatus("live", "live");
      render(JSON.parse(e.data));
    });
    source.onerror = () => {
      setStatus("reconnecting…", "down");
      // An answer other than the stream (a 503 while the service starts)
      // closes an EventSource for good: open it again a little later.
      const closed = source && source.readyState === EventSource.CLOSED;
      const p = new URLSearchParams();
      if (district()) p.set("district", district());
      fetch("/v1/dashboard/summary?" + p.toString(), { headers: { Authorization: "Bearer " + tok } })
        .then((r) => {
          if (r.status === 401) {
            sessionStorage.removeItem(KEY);
            showLogin("That token was refused (expired or not valid).");
          } else if (r.status !== 403) {
            if (closed) setTimeout(connect, 3000);
          } else {
            return r.json().then((p) => {
              if (district()) {
                $("district").value = "";
                connect();
              } else {
                sessionStorage.removeItem(KEY);
                showLogin(p.detail || "That token may not read the dashboard.");
              }
            });
          }
        })
        .catch(() => {
          if (closed) setTimeout(connect, 3000);
        });
    };
  }

  function render(d) {
    $("board").hidden = false;
    $("scope").textContent = d.district ? "district " + d.district : "whole city";
    $("passes-today").textContent = fmt(d.passes_today);
    $("denied-today").textContent = fmt(d.denied_today);
    $("abnormal-today").textContent = fmt(d.abnormal_today);
    $("passes-total").textContent = fmt(d.passes_total);
    $("pending-venues").textContent = fmt(d.pending_reviews.venues);
    $("pending-declarations").textContent = fmt(d.pending_reviews.declarations);
    $("day").textContent = d.day + " (" + d.time_zone + ")";
    $("position").textContent = "log position " + d.position + " · updated " + String(d.at).slice(11, 19) + " (" + d.time_zone + ")";
    chart(d.passes_per_hour || []);
    rows($("occupancy"), d.occupancy_top, (v) => [v.name, v.type, v.district, fmt(v.occupancy)], 4, "nobody inside");
    rows($("by-type"), d.by_venue_type, (c) => [c.venue_type || "(unknown)", fmt(c.passes), fmt(c.denied), fmt(c.abnormal)], 4, "no passes today");
    rows($("by-district"), d.by_district, (c) => [c.district || "(unknown)", fmt(c.passes), fmt(c.denied), fmt(c.abnormal)], 4, "no passes today");
    feed(d.feed || []);
  }

  function rows(tbody, items, cells, width, empty) {
    const frag = document.createDocumentFragment();
    (items || []).forEach((it) => {
      const tr = el("tr");
      cells(it).forEach((c, i) => tr.appendChild(el("td", c, i > 0 && /^[\d,.]+$/.test(c) ? "n" : "")));
      frag.appendChild(tr);
    });
    if (!items || items.length === 0) {
      const tr = el("tr");
      const td = el("td", empty, "empty");
      td.colSpan = width;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }

  function feed(items) {
    const ol = $("feed");
    const frag = document.createDocumentFragment();
    items.forEach((a) => {
      const li = el("li");
      li.appendChild(el("span", String(a.at).slice(11, 16), "time"));
      li.appendChild(el("span", (a.venue_name || a.venue_id) + " · " + a.district + (a.reason ? " · " + a.reason : "")));
      const tag = a.decision === "deny" ? "denied" : a.code_colour;
      li.appendChild(el("span", tag, "tag " + (a.decision === "deny" ? "deny" : a.code_colour === "red" ? "red" : "")));
      frag.appendChild(li);
    });
    if (items.length === 0) frag.appendChild(el("li", "none today", "empty"));
    ol.replaceChildren(frag);
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  // chart draws the hours as stacked bars (passed below, denied above).
  function chart(hours) {
    const root = $("hours");
    const W = 960, H = 240, left = 44, bottom = 22, top = 10;
    const max = Math.max(1, ...hours.map((h) => h.passes));
    const scale = niceMax(max);
    const n = Math.max(hours.length, 1);
    const bw = (W - left - 8) / n;
    const y = (v) => H - bottom - (v / scale) * (H - bottom - top);
    const g = svg("g", {});
    for (let i = 0; i <= 4; i++) {
      const v = (scale * i) / 4;
      g.appendChild(svg("line", { x1: left, x2: W - 4, y1: y(v), y2: y(v), class: "grid" }));
      g.appendChild(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, fmt(Math.round(v))));
    }
    hours.forEach((h, i) => {
      const x = left + i * bw + 2;
      const passed = h.passes - h.denied;
      const bar = svg("rect", { x: x, width: Math.max(bw - 4, 1), y: y(passed), height: y(0) - y(passed), class: "bar-pass" });
      bar.appendChild(svg("title", {}, hourOf(h.hour) + ":00 · " + h.passes + " passes, " + h.denied + " denied"));
      g.appendChild(bar);
      if (h.denied > 0) {
        g.appendChild(svg("rect", { x: x, width: Math.max(bw - 4, 1), y: y(h.passes), height: y(passed) - y(h.passes), class: "bar-deny" }));
      }
      if (i % 2 === 0) {
        g.appendChild(svg("text", { x: x + bw / 2 - 2, y: H - 6, "text-anchor": "middle", class: "axis" }, hourOf(h.hour)));
      }
    });
    root.replaceChildren(g);
    root.dataset.total = String(hours.reduce((s, h) => s + h.passes, 0));
  }

  // hourOf reads the hour of an RFC 3339 time as written, in the city's
  // zone (the server's), not the browser's.
  function hourOf(t) {
    return Number(String(t).slice(11, 13));
  }

  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      $("token").value = "";
      connect();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showLogin();
    });
    $("district").addEventListener("change", connect);
    // A token given in the address again (a new #token=…) takes over.
    window.addEventListener("hashchange", () => {
      if (new URLSearchParams(location.hash.slice(1)).has("token")) {
        tokenFromHash();
        connect();
      }
    });
    tokenFromHash();
    connect();
  });
})();
