// A readable list of the OpenAPI schema: every operation, its parameters and its answers.
"use strict";

function cell(row, text, tag = "td") {
  const c = document.createElement(tag);
  c.textContent = text;
  row.appendChild(c);
}

document.addEventListener("DOMContentLoaded", async () => {
  const spec = await (await fetch("/api/openapi.json")).json();
  const root = document.getElementById("ops");
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const h = document.createElement("h2");
      h.textContent = `${method.toUpperCase()} ${path}: ${op.summary || ""}`;
      root.appendChild(h);
      const table = document.createElement("table");
      table.className = "api";
      const head = table.insertRow();
      for (const t of ["parameter", "type", "description"]) cell(head, t, "th");
      for (const p of op.parameters || []) {
        const r = table.insertRow();
        cell(r, p.name);
        cell(r, (p.schema.enum || [p.schema.type]).join(" | "));
        cell(r, p.description || "");
      }
      if (op.requestBody) {
        const r = table.insertRow();
        cell(r, "file");
        cell(r, Object.keys(op.requestBody.content).join(", "));
        cell(r, "the image (multipart field), or the raw body");
      }
      for (const [status, resp] of Object.entries(op.responses || {})) {
        const r = table.insertRow();
        cell(r, `→ ${status}`);
        cell(r, Object.keys(resp.content || {}).join(", "));
        cell(r, resp.description || "");
      }
      root.appendChild(table);
    }
  }
});
