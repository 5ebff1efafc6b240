#!/usr/bin/env python3
"""Writes crates/edge/openapi.json: the collector's API in OpenAPI 3.1.

Kept as a generator so shared shapes are written once; the edge's test
`tests/openapi.rs` holds the document to the routes of `src/lib.rs`.
Run: python3 tools/openapi.py"""
import json, pathlib

def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def obj(props, required=(), extra=False, desc=None):
    o = {"type": "object", "properties": props}
    if required: o["required"] = list(required)
    if not extra: o["additionalProperties"] = False
    if desc: o["description"] = desc
    return o
def arr(items, desc=None):
    a = {"type": "array", "items": items}
    if desc: a["description"] = desc
    return a
S = {"type": "string"}; I = {"type": "integer"}; N = {"type": "number"}; B = {"type": "boolean"}
def nullable(s): return {"anyOf": [s, {"type": "null"}]}
def null_optional(o):
    """The same object with every optional property nullable: our parsers
    read null as absent."""
    req = set(o.get("required", []))
    o["properties"] = {k: (v if k in req else nullable(v)) for k, v in o["properties"].items()}
    return o
ANY = {"description": "any JSON value"}

EVENT = {"type": {"enum": ["page", "screen", "track", "identify", "group", "alias"]}, "event": S,
                "messageId": {"type": "string", "minLength": 1, "maxLength": 100}, "anonymousId": S, "name": S,
                "userId": S, "previousId": S, "groupId": S, "timestamp": {"type": "string", "format": "date-time"},
                "originalTimestamp": {"type": "string", "format": "date-time"}, "category": S, "integrations": {"type": "object"},
                "_metadata": {"type": "object"}, "version": ANY, "receivedAt": S, "channel": S,
                "sentAt": {"type": "string", "format": "date-time"}, "properties": {"type": "object"},
                "traits": {"type": "object"}, "context": {"type": "object"}, "consent": ref("Consent"),
                "identitySignature": S}

SITE_CONFIG = {"rules": nullable({"type": "object"}), "cta": nullable({"type": "object",
      "properties": {"holdout_percent": {"type": "integer", "minimum": 0, "maximum": 50}},
      "additionalProperties": {"type": "object", "additionalProperties": obj({"text": S, "href": S})}}),
      "consent": null_optional(obj({"cookieless_pageviews": B, "respect_dnt": B, "sanitise": obj({"remove": arr(S), "keep": arr(S)}), "hash_user_ids": B,
                      "server_purposes": arr({"enum": ["analytics", "personalization", "marketing"]})})),
      "channels": nullable(obj({"overrides": arr({"type": "object"}), "internal_hosts": arr(S)})),
      "conversions": arr({"type": "object"}), "attribution": null_optional(obj({"journey_timeout_hours": N, "merge_on_email": B})),
      "timezone": S, "limits": obj({"ip_per_minute": I, "site_per_minute": I, "server_per_minute": I, "webhooks_per_minute": I, "ledger_events": I})}

schemas = {
  "Error": obj({"error": obj({"code": S, "message": S}, ["code", "message"]),
                "rejected": arr(ref("Rejection"))}, ["error"], desc="Every error: a stable code and a message naming the field."),
  "Rejection": obj({"index": I, "error": obj({"code": S, "field": S, "message": S}, ["code", "message"])}, ["index", "error"]),
  "Consent": obj({"analytics": B, "personalization": B, "marketing": B, "policy": I, "basis": {"enum": ["site"]}}, ["analytics", "personalization", "marketing"],
                 desc="The consent stamp an event was captured under; `basis: site` is the collector's own, on unstamped server events."),
  "Event": null_optional(obj(EVENT, ["type", "messageId"],
               desc="A Segment-spec event; validated by the core (Event::parse), bounds in Limits::DEFAULT; the browser's messageIds are UUIDs.")),
  "BatchBody": obj({"site": S, "batch": arr(ref("Event"))}, ["site", "batch"]),
  "SegmentBatch": obj({"batch": arr(ref("SegmentMessage")), "sentAt": {"type": "string", "format": "date-time"}, "context": {"type": "object"},
                       "writeKey": S, "integrations": {"type": "object"}}, ["batch"],
                      desc="Segment's HTTP Tracking API batch: the site is the credential (Basic auth or writeKey)."),
  "SegmentMessage": obj({**null_optional(obj(EVENT))["properties"], "writeKey": S},
                        desc="One message: a missing messageId is given one; a single call's type is its endpoint's."),
  "SegmentAnswer": obj({"success": B, "accepted": I, "duplicates": I, "rejected": arr(ref("Rejection")),
                        "consent": obj({"stripped": I, "dropped": I}), "bots": I}, ["success"], extra=True),
  "BatchAnswer": obj({"accepted": I, "duplicates": I, "rejected": arr(ref("Rejection")),
                      "consent": obj({"stripped": I, "dropped": I}), "bots": I,
                      "visitors": arr({"type": "object"}, "server events only: the visitors reached, with their scores")},
                     ["accepted", "duplicates", "rejected", "consent"], extra=True),
  "Withdrawal": obj({"site": S, "anonymousId": S, "consent": ref("Consent"), "timestamp": {"type": "string", "format": "date-time"}},
                    ["site", "anonymousId", "consent", "timestamp"]),
  "WithdrawalAnswer": obj({"withdrawn": B, "kept": I, "removed": I}, ["withdrawn"]),
  "SiteConfig": obj(SITE_CONFIG,
      desc="A site's configuration document (core site_config::SiteConfig plus the collector's limits)."),
  "SiteCreate": obj({"id": S, "name": S, "origins": arr(S), "retention_days": I, "webhooks": arr(S), **SITE_CONFIG}, ["id", "origins"]),
  "SiteCreated": obj({"id": S, "name": S, "origins": arr(S), "retention_days": I, "webhooks": arr(S), "server_key": S,
                      "signing_secret": S, "webhook_secret": S, "identity_secret": S}, extra=True, desc="Secrets are answered once."),
  "SitePatch": obj({"name": S, "origins": arr(S), "retention_days": I, "webhooks": arr(S), **SITE_CONFIG}),
  "Site": obj({"id": S, "name": S, "origins": arr(S), "retention_days": I, "webhooks": arr(S), "updated_at": I,
               "config": ref("SiteConfig"), "effective_rules": {"type": "object"}, "script_tag": S,
               "suggested_conversions": arr(obj({"event": S}, ["event"]))}, extra=True),
  "BrowserConfig": obj({"site": S, "rules_version": S, "rules_compact": ANY, "cta": ANY, "holdout_percent": I, "consent": obj({"policy_version": I, "sanitise": {"type": "object"}})}, extra=True),
  "Rotation": obj({"kind": {"enum": ["signing", "webhook", "identity"]}, "grace_seconds": I}, ["kind"]),
  "Token": obj({"id": S, "role": S, "name": S, "token": S, "created_at": S, "expires_at": nullable(S), "last_used_at": nullable(S), "revoked_at": nullable(S)}, extra=True),
  "TokenRequest": obj({"role": {"enum": ["owner", "analyst", "privacy", "ingest"]}, "name": S, "expires_at": {"type": "string", "format": "date-time"}}, ["role", "name"]),
  "ShareRequest": obj({"name": S, "expires_at": {"type": "string", "format": "date-time"}}),
  "Share": obj({"id": S, "name": S, "url": S, "created_at": S, "expires_at": nullable(S), "revoked_at": nullable(S)}, extra=True),
  "List": obj({}, extra=True, desc="A list answer: its items under a named key (tokens, shares, entries, deliveries, leads)."),
  "RuleCheck": obj({"text": S, "format": nullable({"enum": ["toml", "json"]}), "journey": nullable(arr(S))}, ["text"]),
  "RuleCheckAnswer": obj({"ok": B, "errors": arr(obj({"line": nullable(I), "field": S, "rule": S})), "version": S, "actions": arr(S),
                          "tiers": arr(S), "document": {"type": "object"}, "toml": nullable(S), "score": ANY}, ["ok"]),
  "SpendUpload": obj({"site": S, "currency": S, "rows": arr(obj({"channel": S, "date": {"type": "string", "format": "date"}, "amount_minor": I, "currency": S}, ["channel", "date", "amount_minor"]))}, ["site", "rows"]),
  "SpendAnswer": obj({"site": S, "rows": I, "amount_minor": I}),
  "Subject": obj({"site": S, "id": S}, ["site", "id"]),
  "Report": obj({"site": S}, extra=True, desc="A report: see README's API table for its fields; CSV with Accept: text/csv where noted."),
  "Health": obj({"status": S, "version": S, "consent_policy": I, "database": {"type": "object"}}, extra=True),
  "Install": obj({"site": S, "script_tag": S, "origins": arr(S), "first_event": ANY, "last_event": ANY, "events_24h": I}, extra=True),
}

def json_body(schema): return {"required": True, "content": {"application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}}}
def answer(schema, code="200", desc="OK"):
    r = {code: {"description": desc, "content": {"application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}}}}
    r["default"] = {"description": "An error", "content": {"application/json": {"schema": ref("Error")}}}
    return r
def op(summary, responses, body=None, auth=True, params=()):
    o = {"summary": summary, "responses": responses}
    if body: o["requestBody"] = body
    if not auth: o["security"] = []
    if params: o["parameters"] = list(params)
    return o
def q(name, desc, required=False): return {"name": name, "in": "query", "required": required, "schema": S, "description": desc}
def p(name): return {"name": name, "in": "path", "required": True, "schema": S}
SITEQ = q("site", "the site id", True)
PERIOD = [q("from", "RFC 3339 start"), q("to", "RFC 3339 end")]
empty = {"204": {"description": "No content"}, "default": {"description": "An error", "content": {"application/json": {"schema": ref("Error")}}}}
html = {"200": {"description": "HTML", "content": {"text/html": {"schema": S}}}}

paths = {
  "/": {"get": op("The demo site (development only) or the static assets", html, auth=False)},
  "/health": {"get": op("Health: status, version, consent policy, migrations", answer("Health"), auth=False)},
  "/v1/openapi.json": {"get": op("This document", answer({"type": "object"}), auth=False)},
  "/v1/batch": {"post": {**op("Browser events {site, batch} (public; the site's origin, CORS), or Segment's batch with a write key",
                              answer({"anyOf": [ref("BatchAnswer"), ref("SegmentAnswer")]}),
                              json_body({"anyOf": [ref("BatchBody"), ref("SegmentBatch")]})), "security": [{}, {"basic": []}]},
                "options": op("CORS preflight", empty, auth=False)},
  "/v1/consent": {"post": op("A withdrawal from the browser module (public)", answer("WithdrawalAnswer"), json_body("Withdrawal"), auth=False),
                  "options": op("CORS preflight", empty, auth=False)},
  "/v1/events": {"post": op("Server and offline events (site key, ingest token or HMAC signature)", answer("BatchAnswer"), json_body("BatchBody"))},
  **{f"/v1/{t}": {"post": {**op(f"Segment's {t} call: one message (Basic auth or writeKey)", answer("SegmentAnswer"), json_body("SegmentMessage")),
                          "security": [{"basic": []}, {}]}} for t in ["track", "identify", "page", "screen", "group", "alias"]},
  "/v1/sites": {"post": op("Create a site (super-admin)", answer("SiteCreated", "201", "Created"), json_body("SiteCreate"))},
  "/v1/sites/{site}": {"get": op("Read a site (owner)", answer("Site"), params=[p("site")]),
                       "patch": op("Change a site's settings, validated as a whole (owner)", answer("Site"), json_body("SitePatch"), params=[p("site")])},
  "/v1/sites/{site}/secrets/rotate": {"post": op("Rotate a secret (owner)", answer({"type": "object"}), json_body("Rotation"), params=[p("site")])},
  "/v1/sites/{site}/tokens": {"post": op("Create a site token (owner); its secret answered once", answer("Token", "201", "Created"), json_body("TokenRequest"), params=[p("site")]),
                              "get": op("List the site's tokens, no secrets (owner)", answer("List"), params=[p("site")])},
  "/v1/sites/{site}/tokens/{id}": {"delete": op("Revoke a token and what it made (owner)", answer({"type": "object"}), params=[p("site"), p("id")])},
  "/v1/sites/{site}/shares": {"post": op("Create a share link (aggregates only)", answer("Share", "201", "Created"), json_body("ShareRequest"), params=[p("site")]),
                              "get": op("List share links", answer("List"), params=[p("site")])},
  "/v1/sites/{site}/shares/{id}": {"delete": op("Revoke a share link", answer({"type": "object"}), params=[p("site"), p("id")])},
  "/v1/sites/{site}/audit": {"get": op("The audit log (JSON, or CSV with Accept: text/csv)", answer("List"), params=[p("site")] + PERIOD)},
  "/v1/sites/{site}/install": {"get": op("The installation check: the tag and the latest page events", answer("Install"), params=[p("site")])},
  "/v1/sites/{site}/rules/check": {"post": op("Check a rule file (lines and fields) and score a journey; stores nothing", answer("RuleCheckAnswer"), json_body("RuleCheck"), params=[p("site")])},
  "/v1/sites/{site}/webhooks/test": {"post": op("One signed test delivery to each webhook URL", answer({"type": "object"}), json_body({"type": "object"}), params=[p("site")])},
  "/v1/sites/{site}/webhooks/deliveries": {"get": op("The last 20 delivery attempts", answer("List"), params=[p("site")])},
  "/v1/sites/{site}/config": {"get": op("The browser module's config (public; ETag, If-None-Match → 304)", answer("BrowserConfig"), auth=False, params=[p("site")]),
                              "options": op("CORS preflight", empty, auth=False, params=[p("site")])},
  "/v1/spend": {"post": op("Ad spend per channel and day (JSON, or text/csv with ?site=&currency=)", answer("SpendAnswer"),
                           {"required": True, "content": {"application/json": {"schema": ref("SpendUpload")}, "text/csv": {"schema": S}}})},
  "/v1/subjects/export": {"post": op("Export everything held about a subject (owner, privacy)", answer("Report"), json_body("Subject"))},
  "/v1/subjects/erase": {"post": op("Erase a subject everywhere (owner, privacy)", answer("Report"), json_body("Subject"))},
  "/v1/subjects/{id}": {"get": op("Export a subject", answer("Report"), params=[p("id"), SITEQ]),
                        "delete": op("Erase a subject", answer("Report"), params=[p("id"), SITEQ])},
  "/v1/subjects/{id}/score": {"get": op("Explain a subject's score", answer("Report"), params=[p("id"), SITEQ])},
  "/v1/reports/attribution": {"get": op("Credit per channel under every model, Markov and Shapley", answer("Report"), params=[SITEQ] + PERIOD + [q("conversion", "one conversion definition's event")])},
  "/v1/reports/kpis": {"get": op("KPIs per channel, funnel, AQS, TTA", answer("Report"), params=[SITEQ] + PERIOD + [q("model", "the crediting model")])},
  "/v1/reports/paths": {"get": op("Top and fastest converting paths", answer("Report"), params=[SITEQ] + PERIOD)},
  "/v1/reports/stages": {"get": op("The stage funnel", answer("Report"), params=[SITEQ] + PERIOD)},
  "/v1/reports/lift": {"get": op("CTA holdout lift per tier and overall, an always-valid p-value, tier calibration", answer("Report"),
                                 params=[SITEQ, q("conversion", "one of the site's conversions (default: any)")] + PERIOD)},
  "/v1/reports/series": {"get": op("The dashboard's charts: per channel, tier and TTA bin over local hours or days", answer("Report"),
                                   params=[SITEQ, q("period", "today, yesterday, 7d, 30d or custom"), q("from_date", "custom: first local date"),
                                           q("to_date", "custom: last local date"), q("model", "the crediting model"), q("bucket", "auto, hour or day")] + PERIOD)},
  "/v1/reports/customers": {"get": op("The customer book of the last daily refit: value to date, P(alive), predicted value, segment (leads permission)", answer("Report"),
                                     params=[SITEQ, q("segment", "new, high_value, occasional, at_risk or lapsed"), q("limit", "1 to 1000 customers, highest value first")])},
  "/v1/reports/customers/refit": {"post": op("Refit the customer book now, at most once a minute (config permission)",
                                            answer(obj({"customers": I, "refit_ms": I}, ["customers", "refit_ms"])), params=[SITEQ])},
  "/v1/reports/cohorts": {"get": op("Value per cohort per month since acquisition", answer("Report"),
                                    params=[SITEQ, q("by", "first_channel (default) or first_month")])},
  "/v1/leads": {"get": op("Leads by score, tier and stage", answer("Report"), params=[SITEQ, q("tier", "one tier"), q("stage", "one stage")])},
}
doc = {
  "openapi": "3.1.0",
  "info": {"title": "microfunnel collector", "version": "0.1.0",
           "description": "The collector's HTTP API. Admin endpoints take `Authorization: Bearer` (the operator's token, a site token, or a share link's secret); what each may do is in README."},
  "servers": [{"url": "http://127.0.0.1:8787", "description": "cargo xtask dev"}],
  "security": [{"bearer": []}],
  "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                    "basic": {"type": "http", "scheme": "basic", "description": "Segment's: the write key as user name, no password"}}, "schemas": schemas},
  "paths": paths,
}
out = pathlib.Path(__file__).resolve().parent.parent / "crates/edge/openapi.json"
out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"wrote {out} ({len(paths)} paths)")
