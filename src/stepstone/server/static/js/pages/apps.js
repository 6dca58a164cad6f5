// The apps written with an official SDK that synced to this server: where they are served,
// which SDK, their functions, their last sync and its error; each can be synced again.
import { api, post } from "../api.js";
import { fill, h, main, toast } from "../dom.js";
import { when } from "../format.js";
import { poller } from "../router.js";
import { functionLink } from "../widgets.js";

function appCard(app, resync) {
  return h("div", { class: "panel card", "data-app-id": app.id },
    h("h3", null, app.id),
    h("dl", null,
      h("dt", null, "URL"), h("dd", { class: "app-url" }, app.url),
      h("dt", null, "SDK"), h("dd", { class: "app-sdk" }, [app.sdk, app.framework].filter(Boolean).join(" · ")),
      h("dt", null, "last sync"), h("dd", { class: "app-synced" }, when(app.synced_at)),
      h("dt", null, "functions"),
      h("dd", { class: "app-functions" }, app.functions.length
        ? app.functions.map((id) => h("div", null, functionLink(id)))
        : h("span", { class: "subtle" }, "none"))),
    app.error ? h("div", { class: "notice bad app-error" }, `The last sync failed: ${app.error}`) : null,
    h("div", { class: "toolbar end" },
      h("button", { class: "btn small", type: "button", "data-resync": app.id, onclick: () => resync(app.id) }, "Resync")));
}

export function appsPage() {
  const root = h("div", { id: "apps" });
  main().append(h("h1", null, "Apps"), root);
  async function resync(appId) {
    const answer = await post("/v1/apps/sync", { app_id: appId });
    toast(answer.synced ? `${appId} synced.` : `${appId} did not sync: ${answer.error}`, !answer.synced);
    await refresh();
  }
  async function refresh() {
    const { apps } = await api("/v1/apps");
    if (apps.length === 0) {
      fill(root, h("div", { class: "panel empty" },
        "No SDK app has synced yet. Point one at this server (INNGEST_DEV=1, INNGEST_BASE_URL=",
        h("code", null, location.origin), "), or start stepstone dev with -u <its URL>."));
      return true;
    }
    fill(root, h("div", { class: "cards" }, apps.map((app) => appCard(app, resync))));
    return true;
  }
  return poller(refresh);
}
