// The stepstone dashboard: native ES modules over the REST API under /v1, no build step.
// js/dom.js builds the page (text is always set as text), js/format.js formats, js/api.js
// talks to the API, js/router.js maps the URL to a page of js/pages/.
import { TOKEN_KEY, health, onUnauthorized, setLive } from "./js/api.js";
import { fill, h, main } from "./js/dom.js";
import { appsPage } from "./js/pages/apps.js";
import { eventPage, eventsPage } from "./js/pages/events.js";
import { functionPage, functionsPage } from "./js/pages/functions.js";
import { runPage } from "./js/pages/run.js";
import { runsPage } from "./js/pages/runs.js";
import { pause, register, route } from "./js/router.js";

register([
  ["runs", true, runPage],
  ["runs", false, runsPage],
  ["events", true, eventPage],
  ["events", false, eventsPage],
  ["functions", true, functionPage],
  ["functions", false, functionsPage],
  ["apps", false, appsPage],
]);

let signingIn = false;

function showLogin(message) {
  if (signingIn) return;
  pause();
  signingIn = true;
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true });
  const form = h("form", { class: "panel login", id: "login" },
    h("h1", null, "Sign in"),
    h("p", null, "This server needs its API token (the value of --api-token or STEPSTONE_API_TOKEN). " +
      "It is kept in this tab's session storage only."),
    message ? h("div", { class: "notice bad" }, message) : null,
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), input),
    h("button", { class: "btn primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    updateSignOut();
    go();
  });
  fill(main(), form);
  input.focus();
}

function updateSignOut() {
  document.getElementById("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

function go() {
  signingIn = false;
  route();
}

onUnauthorized(showLogin);
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  updateSignOut();
  go();
});
window.addEventListener("hashchange", go);
health().then((info) => {
  document.getElementById("app-name").textContent = `${info.app}${info.dev ? " · dev" : ""}`;
}).catch(() => setLive(false));
updateSignOut();
go();
