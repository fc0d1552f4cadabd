"""`/ui`: one plain page (no build step) that polls the JSON API: routes with configured vs observed split as
bars, proxies with their sync state. The page itself holds no data; its script reads the API token from the
URL fragment (``/ui#token=…``, never sent to the server) and sends it as a bearer token, like the CLI."""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tcpmesh</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
 h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
 .muted { color: #777; } .err { color: #b00020; } .ok { color: #1b7f3b; }
 table { border-collapse: collapse; background: #fff; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee;
 text-align: left; vertical-align: middle; } th { font-weight: 600; }
 .route { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: .6em .9em; margin: .6em 0; }
 .route.mismatch { border-color: #b00020; }
 .bar { position: relative; width: 320px; height: 16px; background: #eee; border-radius: 3px; }
 .bar .obs { position: absolute; left: 0; top: 0; bottom: 0; background: #4a7fd6; border-radius: 3px; }
 .bar .cfg { position: absolute; top: -3px; bottom: -3px; width: 2px; background: #111; }
 .dest { font-family: ui-monospace, monospace; font-size: 12px; }
</style></head>
<body>
<h1>tcpmesh</h1>
<div class="muted" id="summary">loading…</div>
<h2>Routes: configured weight (black mark) and observed share of new connections or requests (bar)</h2>
<div id="routes"></div>
<h2>Rollouts</h2>
<div id="rollouts"><p class=muted>none reported</p></div>
<h2>Proxies</h2>
<table id="proxies"><thead><tr><th>proxy</th><th>CDS</th><th>EDS</th><th>LDS</th><th>ECDS</th><th>last NACK</th>
</tr></thead><tbody></tbody></table>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("tcpmesh-token");
if (token) { sessionStorage.setItem("tcpmesh-token", token); history.replaceState(null, "", location.pathname); }
const headers = token ? {"Authorization": "Bearer " + token} : {};
const pct = v => v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%";
const ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
const esc = s => String(s).replace(/[&<>"']/g, c => ENTITIES[c]);
async function get(path) {
  const r = await fetch(path, {headers, cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status + " " + (await r.text()).slice(0, 200));
  return r.json();
}
function routeHtml(proxy, route) {
  const http = route.protocol === "http";
  const rows = route.destinations.map(d => `<tr>
    <td class="dest">${esc(d.cluster)}</td><td>weight ${esc(d.weight)}</td>
    <td><div class="bar"><div class="obs" style="width:${100 * (d.observed || 0)}%"></div>
      <div class="cfg" style="left:${100 * d.configured}%"></div></div></td>
    <td>configured ${pct(d.configured)}</td><td>observed ${pct(d.observed)}</td>
    <td class="muted">95% ${pct(d.interval[0])}–${pct(d.interval[1])}</td>
    <td>${d.count} ${http ? "requests" : "new"}, ${d.active} active${d.connect_fail ?
      `, <span class="err">${d.connect_fail} failed</span>` : ""}${d.errors_5xx ?
      `, <span class="err">${d.errors_5xx} 5xx</span>` : ""}</td>
    <td>${d.mismatch ? '<span class="err">outside interval</span>' : ""}${(d.shared_with || []).length ?
      `<span class="muted">also counted for ${d.shared_with.map(esc).join(", ")}</span>` : ""}</td></tr>`).join("");
  const c = route.config;
  const src = c ? ` (${esc(c.kind)} ${esc(c.namespace)}/${esc(c.name)})` : "";
  return `<div class="route${route.mismatch ? " mismatch" : ""}"><b>${esc(route.route)}</b>${src}
    <span class="muted">on ${esc(proxy.id)} · ${http ? route.requests + " requests" :
    route.connections + " new connections"} since version
    ${esc(route.version.slice(0, 12))}</span><table>${rows}</table></div>`;
}
function typeCell(t) {
  if (!t) return "<td class=muted>–</td>";
  const cls = t.state === "SYNCED" ? "ok" : (t.state === "ERROR" ? "err" : "");
  return `<td class="${cls}">${esc(t.state)} <span class="muted">${esc((t.acked || "").slice(0, 8))}</span></td>`;
}
async function refresh() {
  try {
    const [status, traffic, rollouts] = await Promise.all(
      [get("/debug/syncz"), get("/api/traffic"), get("/api/rollouts")]);
    document.getElementById("rollouts").innerHTML = rollouts.rollouts.map(r => `<div class="route">
      <b>${esc(r.name)}</b> → ${esc(r.to)}: <b>${esc(r.state)}</b>${r.step !== undefined ? ` at step ${r.step}%` : ""},
      last completed ${r.done}% <span class="muted">(steps ${r.steps.map(esc).join(", ")}%)</span>
      ${r.reason ? `<div class="err">${esc(r.reason)}</div>` : ""}</div>`).join("")
      || "<p class=muted>none reported</p>";
    document.getElementById("summary").innerHTML = `config generation ${status.generation}, ${status.resources}
      resources, ${status.proxies.length} proxies` +
      (status.rejected ? ` · <span class="err">latest change rejected</span>` : "");
    document.getElementById("routes").innerHTML =
      traffic.proxies.flatMap(p => p.routes.map(r => routeHtml(p, r))).join("") || "<p class=muted>no routes</p>";
    document.querySelector("#proxies tbody").innerHTML = status.proxies.map(p => {
      const nack = Object.entries(p.types).find(([, t]) => t.state === "ERROR" && t.last_nack);
      return `<tr><td class="dest">${esc(p.id)}</td>${["Cluster", "ClusterLoadAssignment", "Listener",
        "TypedExtensionConfig"].map(k => typeCell(p.types[k])).join("")}
        <td class="err">${nack ? esc(nack[0] + ": " + nack[1].last_nack.message) : ""}</td></tr>`;
    }).join("");
  } catch (e) {
    document.getElementById("summary").innerHTML = `<span class="err">${esc(e.message)}</span>`;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
"""
