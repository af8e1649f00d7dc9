"""Every shipped provider mapping, end to end: platform → gateway → provider → gateway → platform.

For each ``mappings/<provider>.yaml`` the real gateway runs on 127.0.0.1 in front of the test
upstream (:class:`support.upstream.RecordingUpstream`), which answers with the mapping's own ``examples:``. A client
playing the platform redeems a sealed code (or a refresh token) at ``/<provider>/token``; then:

* the request the provider received must match what the provider's documentation says (the
  ``DOCUMENTED`` table below, written from the docs and ../shared/providers.md, not from the
  mappings): method, where the parameters go, client authentication, parameter names, headers;
* the platform's answer must be the RFC 6749 answer the example expects: 200 JSON with
  ``Cache-Control: no-store`` for a token, the status and ``error`` code for an error.

A new mapping is tested here by writing its examples and one line of ``DOCUMENTED``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from support.documented import Documented, has_token_url, mismatches, with_token_url, with_url
from support.mappings import with_bases
from support.oauth import basic
from support.sockets import port_of, start_site
from support.upstream import RecordingUpstream, Reply

import gateway.upstream.answer
from gateway.config.settings import load_config
from gateway.oauth.linkcontext import link_sealer, open_refresh, seal_refresh
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import CodePayload, seal_code
from gateway.web.app import create_app
from gateway.web.appkeys import GRACE, STORE

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
PROVIDERS = sorted(file.stem for file in MAPPINGS.glob("*.yaml"))
#: The refresh token the platform holds; examples that keep it expect this value (gateway.upstream.examples).
REFRESH_TOKEN_SENT = "refresh-token-sent-by-the-platform"
#: The tenant a user of a multi-tenant mapping (``tenant:``) names in the gateway's form.
TENANTS = {"shopify": "acme-shop", "zendesk": "acme", "okta": "acme.okta.com", "homeassistant": "abcdefgh.ui.nabu.casa"}
REDIRECTS = {
    "alexa": "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA",
    "google": "https://oauth-redirect.googleusercontent.com/r/{project}",
}


def _names(*names: str) -> frozenset[str]:
    return frozenset(names)


CODE = _names("grant_type", "code", "redirect_uri")
REFRESH = _names("grant_type", "refresh_token")
POST_CREDENTIALS = _names("client_id", "client_secret")

#: What each provider's documentation says its token request looks like.
DOCUMENTED: dict[str, Documented] = {
    # https://developer.amazon.com/docs/login-with-amazon/authorization-code-grant.html
    "amazon": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code
    "google": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/health/setup (Google's OAuth: the web-server flow above)
    "google-health": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
    "entra": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"scope"}, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
    "github": Documented(auth="body", code=_names("code", "redirect_uri") | POST_CREDENTIALS,
                         refresh=REFRESH | POST_CREDENTIALS, headers={"Accept": "application/json"}),
    # https://api.slack.com/methods/oauth.v2.access: Basic recommended
    "slack": Documented(auth="basic", code=_names("code", "redirect_uri"), refresh=REFRESH),
    # https://developer.withings.com/api-reference/#tag/oauth2/operation/oauth2-getaccesstoken
    "withings": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"action"}, refresh=REFRESH | POST_CREDENTIALS | {"action"},
                           values={"action": "requesttoken"}),
    # https://developers.strava.com/docs/authentication/#tokenexchange
    "strava": Documented(auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/
    "threads": Documented(
        auth="body", code=CODE | POST_CREDENTIALS,
        refresh_as=Documented(method="GET", encoding="query", auth="nothing", refresh=_names("grant_type", "access_token"),
                              values={"grant_type": "th_refresh_token", "access_token": REFRESH_TOKEN_SENT}),
        exchange_as=Documented(method="GET", encoding="query", auth="secret", code=_names("grant_type", "client_secret", "access_token"),
                               values={"grant_type": "th_exchange_token"}),
    ),
    # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm (PKCE: code_verifier)
    "salesforce": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"}, refresh=REFRESH | POST_CREDENTIALS,
                             headers={"Accept": "application/json"}),
    # https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow#confirm
    "facebook": Documented(method="GET", encoding="query", auth="body", code=_names("code", "redirect_uri") | POST_CREDENTIALS),
    # https://developers.figma.com/docs/rest-api/authentication (refreshes at /v1/oauth/refresh, HTTP Basic)
    "figma": Documented(auth="basic", code=CODE, refresh=REFRESH, refresh_as=Documented(auth="basic", refresh=REFRESH)),
    # https://dev.fitbit.com/build/reference/web-api/authorization/oauth2-token/
    "fitbit": Documented(auth="basic+client_id", code=CODE | {"client_id", "code_verifier"}, refresh=REFRESH),
    # https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/user-access-token
    "x": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://github.com/reddit-archive/reddit/wiki/OAuth2; redirect_uri on refresh: providers.md
    "reddit": Documented(auth="basic", code=CODE, refresh=REFRESH | {"redirect_uri"}, headers={"User-Agent": None}),
    # https://www.ecobee.com/home/developer/api/documentation/v1/auth/authz-code-authorization.shtml
    "ecobee": Documented(encoding="query", auth="none", code=CODE | {"client_id"}, refresh=REFRESH | {"client_id"}),
    # https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token
    "dropbox": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developer.spotify.com/documentation/web-api/tutorials/code-flow
    "spotify": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.zoom.us/docs/integrations/oauth/ (a form body, HTTP Basic; PKCE: code_verifier)
    "zoom": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://www.zoho.com/fsm/developer/help/api/refresh-token.html (a POST with query parameters)
    "zoho": Documented(encoding="query", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.smartthings.com/docs/service-integrations/token-management
    "smartthings": Documented(auth="basic+client_id", code=CODE | {"client_id"}, refresh=REFRESH | {"client_id"}),
    # https://api-docs.home-connect.com/authorization/#authorization-code-grant-flow
    "homeconnect": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | {"client_secret"}),
    # https://discord.com/developers/docs/topics/oauth2#authorization-code-grant-access-token-exchange-example
    "discord": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://mailchimp.com/developer/marketing/guides/access-user-data-oauth-2/
    "mailchimp": Documented(auth="body", code=CODE | POST_CREDENTIALS),
    # OpenID Connect Core §3.1.3.1 (client_secret_basic, the default), RFC 7636
    "oidc": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant,
    # https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/offline-access-tokens (expiring=1)
    "shopify": Documented(auth="body", code=_names("code", "expiring") | POST_CREDENTIALS,
                          refresh=REFRESH | POST_CREDENTIALS, code_values={"expiring": "1"}),
    # https://developer.zendesk.com/documentation/api-basics/authentication/using-oauth-to-authenticate-zendesk-api-requests-in-a-web-app/
    # https://developer.zendesk.com/api-reference/ticketing/oauth/grant_type_tokens/ (expires_in: a number of seconds, both grants)
    "zendesk": Documented(encoding="json", auth="body", code=CODE | POST_CREDENTIALS | {"scope", "code_verifier", "expires_in"},
                          refresh=REFRESH | POST_CREDENTIALS | {"scope", "expires_in"}, values={"scope": "authorize_scope-at-authorize"},
                          typed={"expires_in": 1800}),
    # https://docs.gitlab.com/api/oauth2/ (credentials in the parameters; redirect_uri on refresh too)
    "gitlab": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"},
                         refresh=REFRESH | POST_CREDENTIALS | {"redirect_uri"}),
    # https://developer.todoist.com/api/v1/#tag/Authorization/OAuth
    "todoist": Documented(auth="body", code=_names("code") | POST_CREDENTIALS),
    # https://developer.box.com/reference/post-oauth2-token/
    "box": Documented(auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow
    "linkedin": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.asana.com/docs/oauth
    "asana": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"}, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/ (a JSON body)
    "atlassian": Documented(encoding="json", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://dev.netatmo.com/apidocumentation/oauth
    "netatmo": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.miro.com/reference/exchange-authorization-code-with-access-token (query string)
    "miro": Documented(encoding="query", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://pipedrive.readme.io/docs/marketplace-oauth-authorization (HTTP Basic)
    "pipedrive": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developer.calendly.com/api-docs/be9b32ef4b44c-get-access-token
    "calendly": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://cloud.ouraring.com/docs/authentication
    "oura": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.webex.com/docs/integrations
    "webex": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.xero.com/documentation/guides/oauth2/auth-flow/ (HTTP Basic)
    "xero": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://docs.sonos.com/docs/create-token, https://developer.sonos.com/reference/authorization-api/refresh-token/ (HTTP Basic)
    "sonos": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.meethue.com/develop/hue-api/remote-authentication-oauth/ (Basic; Digest not used)
    "hue": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.facebook.com/documentation/instagram-platform/reference/access_token and …/refresh_access_token
    "instagram": Documented(
        auth="body", code=CODE | POST_CREDENTIALS,
        refresh_as=Documented(method="GET", encoding="query", auth="nothing", refresh=_names("grant_type", "access_token"),
                              values={"grant_type": "ig_refresh_token", "access_token": REFRESH_TOKEN_SENT}),
        exchange_as=Documented(method="GET", encoding="query", auth="secret", code=_names("grant_type", "client_secret", "access_token"),
                               values={"grant_type": "ig_exchange_token"}),
    ),
    # https://developer.paypal.com/docs/log-in-with-paypal/integrate/ (HTTP Basic)
    "paypal": Documented(auth="basic", code=_names("grant_type", "code"), refresh=REFRESH),
    # https://developer.squareup.com/reference/square/oauth-api/obtain-token (JSON)
    "square": Documented(encoding="json", auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS,
                         refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.okta.com/docs/guides/implement-grant-type/authcode/main/ (client_secret_basic)
    "okta": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # Device, energy, vehicle, health and home-platform clouds.
    # https://developer.dexcom.com/docs/dexcom/authentication/ (credentials in the form body)
    "dexcom": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer-v4.enphase.com/docs/quickstart.html (parameters in the query string, HTTP Basic)
    "enphase": Documented(encoding="query", auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.home-assistant.io/docs/auth_api (no secret: client_id, a URL, on every request)
    "homeassistant": Documented(auth="none", code=_names("grant_type", "code", "client_id"), refresh=REFRESH | {"client_id"}),
    # https://developer.miele.com/docs/authorization2 (client_id and client_secret as parameters)
    "miele": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/nest/device-access/authorize (Google's token endpoint: credentials in the body)
    "nest": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://docs.nuki.io/guide/authorization/oauth2/ (the code flow needs the client secret)
    "nuki": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://github.com/polarofficial/accesslink-example-python (Polar's client: HTTP Basic; no refresh grant)
    "polar": Documented(auth="basic", code=CODE),
    # http://developer.honeywellhome.com/oauth2-guide (HTTP Basic with API key and secret)
    "resideo": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://smartcar.com/docs/api-reference/authorization/auth-code-exchange (Basic; a User-Agent is required)
    "smartcar": Documented(auth="basic", code=CODE, refresh=REFRESH, headers={"User-Agent": None}),
    # https://apizone.suunto.com/how-to-start (HTTP Basic, RFC 7617)
    "suunto": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developer.tesla.com/docs/fleet-api/authentication/third-party-tokens (secret and audience on the
    # code exchange; the refresh carries only client_id)
    "tesla": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"audience"}, refresh=REFRESH | {"client_id"},
                         refresh_auth="none"),
    # https://data-api.tibber.com/docs/auth/ (form body with client_id and client_secret; PKCE optional)
    "tibber": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"}, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.volvocars.com/apis/docs/authorisation/ (HTTP Basic; PKCE)
    "volvo": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://cloud-api.wahooligan.com/#authentication (client_id and client_secret as parameters; see the mapping's unverified)
    "wahoo": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.whoop.com/docs/tutorials/refresh-token-javascript (form body; scope=offline on refresh)
    "whoop": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # Calendars, tasks, media and communication.
    # https://developers.acuityscheduling.com/docs/oauth2 (client_id and client_secret in the form body)
    "acuity": Documented(auth="body", code=CODE | POST_CREDENTIALS),
    # https://developer.aircall.io/docs/oauth (a JSON body with the client id and secret, as Aircall's example app sends it)
    "aircall": Documented(encoding="json", auth="body", code=CODE | POST_CREDENTIALS),
    # https://airtable.com/developers/web/api/oauth-reference (Basic when the integration has a secret; PKCE)
    "airtable": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://github.com/basecamp/api/blob/master/sections/authentication.md (POST, every parameter in the query
    # string; type=web_server for the code, type=refresh and redirect_uri for a refresh)
    "basecamp": Documented(encoding="query", auth="body", code=CODE | POST_CREDENTIALS | {"type"},
                           refresh=REFRESH | POST_CREDENTIALS | {"type", "redirect_uri"}),
    # https://cal.com/docs/api-reference/v2/oauth2/exchange-authorization-code-or-refresh-token-for-tokens
    # (client_id in the body, RFC 6749 §2.3.1; a confidential client's secret beside it)
    "calcom": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.clickup.com/reference/getaccesstoken (POST, client_id, client_secret and code in the query)
    "clickup": Documented(encoding="query", auth="body", code=_names("code") | POST_CREDENTIALS),
    # https://linear.app/developers/oauth-2-0-authentication (form body with the credentials; PKCE)
    "linear": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"}, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.monday.com/apps/docs/oauth-2-1 (the OAuth 2.1 token endpoint: a JSON body, client_secret_post, PKCE)
    "monday": Documented(encoding="json", auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"},
                         refresh=REFRESH | POST_CREDENTIALS),
    # https://github.com/pinterest/pinterest-python-generated-api-client/blob/main/docs/OauthApi.md (HTTP Basic, a form)
    "pinterest": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.ringcentral.com/guide/authentication/auth-code-flow (HTTP Basic)
    "ringcentral": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.smartsheet.com/api/smartsheet/openapi/tokens/tokens-getorrefresh (POST, query parameters;
    # client_secret in plain text, the alternative to hash)
    "smartsheet": Documented(encoding="query", auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS,
                             refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.soundcloud.com/docs/api/guide#authentication (client id and secret in the form; PKCE required)
    "soundcloud": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"}, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.tidal.com/documentation/api-sdk/api-sdk-authorization (OAuth 2.1: client_id and the PKCE
    # verifier, no secret)
    "tidal": Documented(auth="none", code=CODE | {"client_id", "code_verifier"}, refresh=REFRESH | {"client_id"}),
    # https://developers.tiktok.com/doc/oauth-user-access-token-management (client_key and client_secret in the form)
    "tiktok": Documented(auth="body", id_name="client_key", code=CODE | {"client_key", "client_secret"},
                         refresh=REFRESH | {"client_key", "client_secret"}),
    # https://github.com/tumblr/docs/blob/master/api.md#v2oauth2token---authorization-code-grant-request
    # (client_id and client_secret as parameters)
    "tumblr": Documented(auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.vimeo.com/api/endpoints/authenticationextras (code, grant_type, redirect_uri; Basic as
    # Vimeo's own libraries send it)
    "vimeo": Documented(auth="basic", code=CODE),
    # https://developer.wordpress.com/docs/api/oauth2/ (client_id and client_secret in the form body)
    "wordpress": Documented(auth="body", code=CODE | POST_CREDENTIALS),
    # https://developers.wrike.com/oauth-20-authorization/ (client_id and client_secret as parameters)
    "wrike": Documented(auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.yahooinc.com/dsp/api/docs/authentication/refresh-token.html (Basic; redirect_uri on refresh)
    "yahoo": Documented(auth="basic", code=CODE, refresh=REFRESH | {"redirect_uri"}),
    # Google and Microsoft Graph API variants (extends: google, extends: entra); identity servers
    # people run themselves; commerce, errands, games and work tools.
    # https://auth0.com/docs/get-started/authentication-and-authorization-flow/authorization-code-flow/call-your-api-using-the-authorization-code-flow (form body with the secret)
    "auth0": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html (Basic; PKCE for the code)
    "cognito": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://developers.docusign.com/platform/auth/reference/obtain-access-token (HTTP Basic with integration and secret key)
    "docusign": Documented(auth="basic", code=_names("grant_type", "code"), refresh=REFRESH),
    # https://developer.ebay.com/api-docs/static/oauth-auth-code-grant-request.html (HTTP Basic; redirect_uri carries the RuName, not the callback: see AUTHORIZE_DOCUMENTED)
    "ebay": Documented(auth="basic", code=_names("grant_type", "code"), refresh=REFRESH),
    # https://dev.epicgames.com/docs/web-api-ref/authentication (client credentials in HTTP Basic)
    "epic-games": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developers.etsy.com/documentation/essentials/authentication/ (the keystring as client_id; PKCE required)
    "etsy": Documented(auth="none", code=CODE | {"client_id", "code_verifier"}, refresh=REFRESH | {"client_id"}),
    # https://developers.google.com/workspace/gmail/api/auth/scopes (Google's token endpoint: credentials in the body)
    "gmail": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/calendar/api/auth (Google's token endpoint)
    "google-calendar": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/people/v1/how-tos/authorizing (Google's token endpoint)
    "google-contacts": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/drive/api/guides/api-specific-auth (Google's token endpoint)
    "google-drive": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/workspace/meet/api/guides/authenticate-authorize (Google's token endpoint)
    "google-meet": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/tasks/auth (Google's token endpoint)
    "google-tasks": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://help.getharvest.com/api/authentication/authentication/server-side-apps/ (form-encoded, credentials as parameters)
    "harvest": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.hover.to/reference/generate-access-token (a JSON body with client_id and client_secret)
    "hover": Documented(encoding="json", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.hubstaff.com/authentication (OpenID Connect: client_secret_basic)
    "hubstaff": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developer.getjobber.com/docs/building_your_app/app_authorization/ (client id and secret as parameters)
    "jobber": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://docs.redhat.com/en/documentation/red_hat_build_of_keycloak/26.2/html/securing_applications_and_services_guide/oidc-layers- (OpenID Connect: client_secret_basic, PKCE)
    "keycloak": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://learn.microsoft.com/en-us/graph/api/planneruser-list-tasks (the v2.0 endpoint: scope on every request)
    "microsoft-planner": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"scope"}, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # https://learn.microsoft.com/en-us/graph/api/chat-post-messages (the v2.0 endpoint)
    "microsoft-teams": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"scope"}, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # https://learn.microsoft.com/en-us/graph/api/todotask-get (the v2.0 endpoint)
    "microsoft-todo": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"scope"}, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # https://learn.microsoft.com/en-us/onedrive/developer/rest-api/getting-started/graph-oauth (the v2.0 endpoint)
    "onedrive": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"scope"}, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # https://learn.microsoft.com/en-us/graph/api/resources/mail-api-overview (the v2.0 endpoint)
    "outlook": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"scope"}, refresh=REFRESH | POST_CREDENTIALS | {"scope"}),
    # https://developer.servicem8.com/docs/platform-services/authentication/ (client_id, client_secret, code as POST parameters)
    "servicem8": Documented(auth="body", code=_names("grant_type", "code") | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.uber.com/docs/riders/references/api/v2/token-post (client_id and client_secret as POST parameters)
    "uber": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.google.com/youtube/v3/guides/authentication (Google's token endpoint)
    "youtube": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # Regional accounts hosts, CRM, finance, commerce and developer platforms.
    # https://developer.atlassian.com/cloud/bitbucket/oauth-2 (curl -u client_id:secret, a form)
    "bitbucket": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://canva.dev/docs/connect/api-reference/authentication/generate-access-token (Basic recommended; PKCE)
    "canva": Documented(auth="basic", code=CODE | {"code_verifier"}, refresh=REFRESH),
    # https://developer.hellosign.com/docs/guides/o-auth/token-generate (a JSON body: client_id, client_secret, code, grant_type, state)
    "dropbox-sign": Documented(encoding="json", auth="body", code=_names("grant_type", "code", "state") | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://www.eventbrite.de/platform/docs/app-oauth-flow (app key, client secret, code and redirect URI as parameters)
    "eventbrite": Documented(auth="body", code=CODE | POST_CREDENTIALS),
    # https://www.freshbooks.com/api/authentication (client id, secret, code and redirect URI as parameters)
    "freshbooks": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://devcenter.heroku.com/articles/oauth (the endpoint for client libraries: credentials in the form body)
    "heroku": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.hubspot.com/docs/api-reference/2026-03/authentication/manage-oauth-tokens (every parameter in the form body)
    "hubspot": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://github.com/KickEngineering/KickDevDocs/blob/main/getting-started/generating-tokens-oauth2-flow.md (form body, credentials, PKCE verifier)
    "kick": Documented(auth="body", code=CODE | POST_CREDENTIALS | {"code_verifier"}, refresh=REFRESH | POST_CREDENTIALS),
    # https://lucid.readme.io/reference/refreshing-the-access-token (a JSON body with client_id and client_secret)
    "lucid": Documented(encoding="json", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.notion.com/reference/create-a-token (HTTP Basic, a JSON body; refresh at the same endpoint)
    "notion": Documented(encoding="json", auth="basic", code=CODE, refresh=REFRESH),
    # https://www.rubydoc.info/gems/patreon/Patreon/OAuth (Patreon's client: credentials as form parameters)
    "patreon": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.procore.com/documentation/content/oauth-endpoints (client_id and client_secret as parameters)
    "procore": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0 (HTTP Basic, a form)
    "quickbooks": Documented(auth="basic", code=CODE, refresh=REFRESH),
    # https://developer.sage.com/accounting/guides/authenticating/postman (client credentials in the body)
    "sage-accounting": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/ (client_id and client_secret in the form body)
    "twitch": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.typeform.com/get-started/applications (client_id and client_secret as parameters)
    "typeform": Documented(auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://developers.webflow.com/data/reference/oauth-app (client_id, client_secret, code, grant_type, redirect_uri)
    "webflow": Documented(auth="body", code=CODE | POST_CREDENTIALS),
    # https://www.zoho.com/accounts/protocol/oauth/multi-dc/client-authorization.html (Zoho's: a POST with query parameters)
    "zoho-calendar": Documented(encoding="query", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
    # https://www.zoho.com/accounts/protocol/oauth/multi-dc/client-authorization.html (Zoho's: a POST with query parameters)
    "zoho-mail": Documented(encoding="query", auth="body", code=CODE | POST_CREDENTIALS, refresh=REFRESH | POST_CREDENTIALS),
}


def test_every_mapping_has_its_documented_token_request() -> None:
    assert sorted(DOCUMENTED) == PROVIDERS


@pytest.fixture
async def provider_upstream() -> AsyncIterator[RecordingUpstream]:
    """Plays every provider: ``/{provider}/token`` answers the queued examples, and
    ``/{provider}/.well-known/openid-configuration`` the discovery document of the issuer ``/{provider}``."""
    async with RecordingUpstream() as upstream:
        for name in PROVIDERS:
            upstream.serve_discovery(f"/{name}")
        yield upstream


def _token_path(name: str) -> str:
    return f"/{name}/token"


#: Endpoints besides the token endpoint a mapping may name, and where the test upstream plays them.
_MORE_URLS = {("upstream", "token", "refresh", "url"): "refresh", ("upstream", "token", "exchange", "url"): "exchange"}


def _environment(name: str, text: str, upstream: RecordingUpstream) -> dict[str, str]:
    """A value for every ``${VAR}`` without a default, as an operator would set them."""
    env = {}
    for variable in re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text):
        if variable.endswith("_PLATFORM_CLIENT_ID"):
            env[variable] = f"{name}-platform"
        elif variable.endswith("_PLATFORM_CLIENT_SECRET"):
            env[variable] = f"{name}-platform-secret"
        elif variable.endswith("_CLIENT_ID"):
            env[variable] = f"{name}-gateway"
        elif variable.endswith("_CLIENT_SECRET"):
            env[variable] = f"{name}-gateway-secret"
        elif variable == "OIDC_ISSUER":
            env[variable] = upstream.url_of(f"/{name}")
        else:
            env[variable] = variable.lower().replace("_", "-")
    return env


async def _start(tmp_path: Path, name: str, upstream: RecordingUpstream, sock: socket.socket) -> tuple[Any, web.AppRunner, dict[str, str]]:
    port = port_of(sock)
    texts = {file.name: file.read_text(encoding="utf-8") for file in with_bases(MAPPINGS / f"{name}.yaml")}
    env = _environment(name, "".join(texts.values()), upstream)
    (tmp_path / "mappings").mkdir()
    for file_name, text in texts.items():  # a variant's bases beside it, each token URL pointed at the test upstream
        if "discovery:" not in text and has_token_url(text):  # a discovery mapping finds it through OIDC_ISSUER
            text = with_token_url(text, upstream.url_of(_token_path(name)))
        for keys, step in _MORE_URLS.items():  # a refresh endpoint of its own, a second exchange step
            try:
                text = with_url(text, keys, upstream.url_of(f"/{name}/{step}"))
            except StopIteration:
                pass
        (tmp_path / "mappings" / file_name).write_text(text, encoding="utf-8")
    (tmp_path / "gateway.yaml").write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"public_url: http://127.0.0.1:{port}\n"
        f'keys: ["{generate_key()}"]\n'
        "cookie: {secure: false}\n"
        "upstream: {timeout: 3}\n"
        f"providers: [{name}]\n",
        encoding="utf-8",
    )
    # In a thread: a discovery document is fetched synchronously from the upstream on this loop.
    config = await asyncio.to_thread(load_config, tmp_path / "gateway.yaml", env=env)
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    await start_site(runner, sock=sock)
    return config, runner, env


@pytest.mark.parametrize("name", PROVIDERS)
async def test_provider_end_to_end(
    name: str, tmp_path: Path, gateway_socket: socket.socket, gateway_port: int, provider_upstream: RecordingUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, runner, env = await _start(tmp_path, name, provider_upstream, gateway_socket)
    try:
        mapping = config.providers[name]
        assert mapping.token.url == provider_upstream.url_of(_token_path(name))
        prefix = name.upper().replace("-", "_")
        platform_id, platform_secret = mapping.platform.client_id, mapping.platform.client_secret
        upstream_id, upstream_secret = mapping.upstream_client_id, mapping.upstream_client_secret
        redirect_uri = REDIRECTS[mapping.platform.profile].format(project=env.get(f"{prefix}_PROJECT_ID", "my-project"))
        callback = config.callback_url(name)
        sealer = Sealer(config.keys)
        assert mapping.examples, "every mapping has examples"
        # A mapping that keeps per-link context seals it into the code and the refresh envelope.
        context = {mapping.tenant.name: TENANTS[name]} if mapping.tenant is not None else {}
        context |= {value: f"{value}-at-authorize" for value in mapping.flow_values}  # {authorize_scope}, …
        links = link_sealer(config.link_keys, config.keys)

        calls = 0
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as platform:
            for index, example in enumerate(mapping.examples):
                label = f"{name} example {example.name!r}"
                runner.app[STORE].local.clear()  # each example presents the same refresh token afresh (no grace)
                runner.app[GRACE].flights.forget()
                raw = example.body.encode() if isinstance(example.body, str) else json.dumps(example.body).encode()
                refresh_path = f"/{name}/refresh" if mapping.refresh.url != mapping.token.url else _token_path(name)
                answered_at = refresh_path if example.grant == "refresh_token" else _token_path(name)
                exchanged = example.grant == "authorization_code" and example.first is not None
                if exchanged:  # the code exchange's own answer, then the second step's
                    provider_upstream.queue(_token_path(name), Reply(body=json.dumps(example.first).encode()))
                    answered_at = f"/{name}/exchange"
                provider_upstream.queue(answered_at, Reply(status=example.status, content_type=example.content_type, body=raw))
                if example.grant == "authorization_code":
                    upstream_code = f"upstream-code-{index}"
                    verifier = ""
                    if mapping.authorize.pkce != "none":
                        verifier = f"verifier-{index}-" + "v" * 43
                    sealed = CodePayload(upstream_code, platform_id, redirect_uri, name, verifier or None, context=context)
                    code = seal_code(sealer, sealed, ttl=300)
                    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
                    expected = {"grant_type": "authorization_code", "code": upstream_code, "redirect_uri": callback}
                    if verifier:
                        expected["code_verifier"] = verifier
                else:
                    held = seal_refresh(links, REFRESH_TOKEN_SENT, context) if mapping.keeps_context else REFRESH_TOKEN_SENT
                    form = {"grant_type": "refresh_token", "refresh_token": held}
                    expected = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN_SENT, "redirect_uri": callback}

                with monkeypatch.context() as patch:
                    if example.now is not None:  # the example's clock, for an absolute expires_at
                        patch.setattr(gateway.upstream.answer, "time", SimpleNamespace(time=lambda now=example.now: now))
                    async with platform.post(
                        f"http://127.0.0.1:{gateway_port}/{name}/token",
                        data=form,
                        headers={"Authorization": basic(platform_id, platform_secret)},
                    ) as response:
                        status, headers, body = response.status, response.headers, await response.json()

                received = [r for r in provider_upstream.requests if r.path.startswith(f"/{name}/") and "/.well-known/" not in r.path]
                calls += 2 if exchanged else 1
                assert len(received) == calls, f"{label}: one upstream call (two with a second exchange step)"
                documented = DOCUMENTED[name]
                if example.grant == "refresh_token" and documented.refresh_as is not None:
                    documented = documented.refresh_as
                recorded = received[-2] if exchanged else received[-1]
                problems = mismatches(
                    recorded, documented, grant=example.grant,
                    client_id=upstream_id, client_secret=upstream_secret, expected=expected,
                )
                assert recorded.path == (refresh_path if example.grant == "refresh_token" else _token_path(name)), label
                assert not problems, f"{label}: the token request differs from the provider's documentation: {problems}"
                if exchanged:
                    assert mapping.exchange is not None and documented.exchange_as is not None, label
                    traded = mapping.exchange.token.search(example.first)
                    problems = mismatches(
                        received[-1], documented.exchange_as, grant="authorization_code",
                        client_id=upstream_id, client_secret=upstream_secret, expected={"access_token": traded},
                    )
                    assert not problems, f"{label}: the second exchange step differs from the provider's documentation: {problems}"

                assert headers["Cache-Control"] == "no-store" and headers["Pragma"] == "no-cache", label
                assert headers["Content-Type"].startswith("application/json"), label
                if "error" in example.expect:
                    assert status == example.expect.get("status", 400), (label, status, body)
                    assert body["error"] == example.expect["error"], (label, body)
                    if "error_description" in example.expect:
                        assert body["error_description"] == example.expect["error_description"], (label, body)
                else:
                    assert status == 200, (label, body)
                    if mapping.keeps_context and "refresh_token" in body:  # an envelope: what is inside
                        upstream_refresh, kept = open_refresh(links, body["refresh_token"])
                        assert kept == context, label
                        body["refresh_token"] = upstream_refresh
                    assert body == dict(example.expect), label
                    assert body["token_type"] == "Bearer", label
                    assert isinstance(body.get("expires_in"), int) or mapping.answer.expires_in_default is None, label
    finally:
        await runner.cleanup()


#: What each provider's documentation says its authorization request needs beyond RFC 6749 §4.1.1
#: (``response_type=code``, ``client_id``, ``redirect_uri``, ``state``): extra parameters, PKCE,
#: and how the platform's ``scope=read write`` must arrive (``None``: the provider's own fixed scope,
#: whose text must contain the given word instead); ``client_id_param``: the client id's own name.
AUTHORIZE_DOCUMENTED: dict[str, dict[str, Any]] = {
    "amazon": {"scope_contains": "profile"},  # Login with Amazon: profile scopes
    "discord": {},
    "dropbox": {"params": {"token_access_type": "offline"}},  # for a refresh token
    "ecobee": {"scope_contains": "smartWrite"},
    "entra": {"params": {"response_mode": "query"}, "scope_contains": "offline_access"},
    "facebook": {"scope": "read,write", "path": "/v26.0/dialog/oauth"},  # comma-separated; Graph API v26.0, the current version
    "figma": {"scope": "read,write"},  # comma-separated
    "fitbit": {"pkce": True},  # Fitbit recommends PKCE for every client
    "github": {"scope": "read,write"},
    "google": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True},
    # https://developers.google.com/health/scopes: every scope begins with …/auth/googlehealth
    "google-health": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True,
                      "scope_contains": "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly"},
    "homeconnect": {"scope_contains": "IdentifyAppliance"},
    "instagram": {"scope": "read,write"},  # comma-separated
    "mailchimp": {},
    "oidc": {"pkce": True},
    "reddit": {"params": {"duration": "permanent"}},  # for a refresh token
    "salesforce": {"pkce": True},  # an org or connected app may require PKCE
    "slack": {"scope_param": "user_scope", "scope": "read,write"},  # user token scopes, comma-separated
    "smartthings": {},
    "spotify": {},
    "strava": {"scope": "read,write"},
    "threads": {"scope": "read,write"},  # comma-separated
    "withings": {"scope": "read,write"},
    "x": {"pkce": True},  # PKCE required
    "shopify": {"scope": "read,write"},  # comma-separated, at https://{shop}.myshopify.com
    "gitlab": {"pkce": True},
    "todoist": {"scope": "read,write"},  # comma-separated
    "box": {},
    "linkedin": {},
    "asana": {"pkce": True},
    "atlassian": {"params": {"audience": "api.atlassian.com", "prompt": "consent"}},
    "netatmo": {},
    "miro": {},
    "pipedrive": {"scope": "read,write"},  # scopes are the app's; what is passed is comma-separated
    "calendly": {"pkce": True},
    "oura": {},
    "webex": {},
    "xero": {},
    "sonos": {"scope": "playback-control-all"},  # a fixed scope
    "hue": {"scope": ""},  # no scope parameter
    "paypal": {},
    "square": {},
    "zendesk": {"pkce": True},
    "okta": {"pkce": True, "path": "/oauth2/v1/authorize"},  # the org authorization server, which every org has
    "zoom": {"pkce": True},
    # Device, energy, vehicle, health and home-platform clouds.
    "dexcom": {"scope": "offline_access"},  # the only scope
    "enphase": {"scope": ""},  # no scope parameter
    "homeassistant": {"scope": ""},  # at https://{instance}; no scope
    "miele": {"scope_contains": "openid"},  # openid is mandatory
    "nest": {"params": {"access_type": "offline", "prompt": "consent"},  # Google's, inherited (extends: google)
             "scope": "https://www.googleapis.com/auth/sdm.service"},
    "nuki": {},
    "polar": {"scope": "accesslink.read_all"},
    "resideo": {"scope": ""},  # no scope parameter
    "smartcar": {"params": {"mode": "live"}},
    "suunto": {"scope": ""},  # no scope parameter
    "tesla": {"scope_contains": "offline_access"},  # for a refresh token
    "tibber": {"pkce": True},  # recommended by Tibber
    "volvo": {"pkce": True},
    "wahoo": {},
    "whoop": {},  # the platform's scopes, offline among them
    "zoho": {"params": {"access_type": "offline", "prompt": "consent"}, "scope": "read,write"},
    # Calendars, tasks, media and communication.
    "acuity": {"scope": "api-v1"},  # a fixed scope
    "aircall": {"scope": "public_api"},  # a fixed scope
    "airtable": {"pkce": True},  # PKCE required
    "basecamp": {"params": {"type": "web_server"}},
    "calcom": {},
    "clickup": {},
    "linear": {"scope": "read,write", "pkce": True},  # comma-separated
    "monday": {"pkce": True},  # PKCE required by the OAuth 2.1 flow
    "pinterest": {"scope": "read,write"},  # comma-separated
    "ringcentral": {},
    "smartsheet": {},
    "soundcloud": {"pkce": True},  # PKCE required
    "tidal": {"pkce": True},  # OAuth 2.1: PKCE
    "tiktok": {"client_id_param": "client_key", "scope": "read,write"},  # client_key; comma-separated
    "tumblr": {"scope_contains": "offline_access"},  # for a refresh token
    "vimeo": {},
    "wordpress": {},
    "wrike": {"scope": "read,write"},  # comma-separated
    "yahoo": {},
    # Google and Microsoft Graph API variants; identity servers people run themselves; commerce,
    # errands, games and work tools.
    "auth0": {},  # the platform's scopes (offline_access among them); audience only when configured
    "cognito": {"pkce": True},
    "docusign": {"scope": "signature extended"},
    "ebay": {"redirect_uri": "ebay-runame", "scope": "https://api.ebay.com/oauth/api_scope"},  # the RuName, not a URL
    "epic-games": {"scope": "basic_profile"},
    "etsy": {"pkce": True},
    "gmail": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/gmail.readonly"},
    "google-calendar": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/calendar.events"},
    "google-contacts": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/contacts.readonly"},
    "google-drive": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/drive.file"},
    "google-meet": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/meetings.space.created"},
    "google-tasks": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/tasks"},
    "harvest": {"scope": ""},  # the application's products, chosen at registration
    "hover": {"scope": ""},
    "hubstaff": {"params": {"nonce": None}},  # a nonce on every request
    "jobber": {"scope": ""},  # the app's scopes, set in the Developer Center
    "keycloak": {"pkce": True},
    "microsoft-planner": {"params": {"response_mode": "query"}, "scope": "openid offline_access Tasks.ReadWrite"},
    "microsoft-teams": {"params": {"response_mode": "query"}, "scope": "openid offline_access User.Read Chat.ReadWrite"},
    "microsoft-todo": {"params": {"response_mode": "query"}, "scope": "openid offline_access Tasks.ReadWrite"},
    "onedrive": {"params": {"response_mode": "query"}, "scope": "openid offline_access Files.ReadWrite"},
    "outlook": {"params": {"response_mode": "query"}, "scope": "openid offline_access Mail.Read Calendars.ReadWrite"},
    "servicem8": {},
    "uber": {},
    "youtube": {"params": {"access_type": "offline", "prompt": "consent"}, "pkce": True, "scope": "https://www.googleapis.com/auth/youtube.readonly"},
    # Regional accounts hosts, CRM, finance, commerce and developer platforms.
    "bitbucket": {"scope": ""},
    "canva": {"pkce": True},  # PKCE required
    "dropbox-sign": {"scope": ""},  # the app's own scopes
    "eventbrite": {"scope": ""},  # no scopes
    "freshbooks": {"scope": ""},
    "heroku": {},
    "hubspot": {},
    "kick": {"pkce": True},  # PKCE required
    "lucid": {"scope": "read write offline_access"},  # offline_access for a refresh token
    "notion": {"params": {"owner": "user"}, "scope": ""},
    "patreon": {},
    "procore": {"scope": ""},  # no scopes
    "quickbooks": {},
    "sage-accounting": {"params": {"filter": "apiv3.1"}},
    "twitch": {},
    "typeform": {"scope": "read write offline"},  # offline for a refresh token
    "webflow": {},
    "zoho-calendar": {"params": {"access_type": "offline", "prompt": "consent"}, "scope": "ZohoCalendar.calendar.ALL,ZohoCalendar.event.ALL"},
    "zoho-mail": {"params": {"access_type": "offline", "prompt": "consent"}, "scope": "ZohoMail.accounts.READ,ZohoMail.messages.ALL"},
}


def test_every_mapping_has_its_documented_authorize_request() -> None:
    assert sorted(AUTHORIZE_DOCUMENTED) == PROVIDERS


@pytest.mark.parametrize("name", PROVIDERS)
async def test_provider_authorize_leg(
    name: str, tmp_path: Path, gateway_socket: socket.socket, gateway_port: int, provider_upstream: RecordingUpstream
) -> None:
    """The browser leg per provider: the platform's authorization request goes on to the
    provider's authorize URL in the provider's own terms."""
    config, runner, env = await _start(tmp_path, name, provider_upstream, gateway_socket)
    try:
        mapping = config.providers[name]
        prefix = name.upper().replace("-", "_")
        redirect_uri = REDIRECTS[mapping.platform.profile].format(project=env.get(f"{prefix}_PROJECT_ID", "my-project"))
        query = {"client_id": mapping.platform.client_id, "redirect_uri": redirect_uri, "state": "platform-state",
                 "response_type": "code", "scope": "read write"}
        authorize_url = f"http://127.0.0.1:{gateway_port}/{name}/authorize"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(authorize_url, params=query, allow_redirects=False) as response:
                page = await response.text()
                if mapping.tenant is not None:  # the gateway's form first: the user names the tenant
                    assert response.status == 200 and mapping.tenant.label in page, page
                    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                    assert csrf is not None, page
                    async with browser.post(
                        response.url, data={"tenant": TENANTS[name], "csrf": csrf.group(1)}, allow_redirects=False
                    ) as response:
                        page = await response.text()
                assert response.status == 302, page
                location = response.headers["Location"]
        expected_url = mapping.authorize.url
        if mapping.tenant is not None:
            expected_url = expected_url.replace("{" + mapping.tenant.name + "}", TENANTS[name])
        assert location.startswith(expected_url + ("&" if "?" in expected_url else "?")), location
        sent = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        documented = AUTHORIZE_DOCUMENTED[name]
        assert sent["response_type"] == "code"
        assert sent[documented.get("client_id_param", "client_id")] == mapping.upstream_client_id
        # eBay's redirect_uri is the application's RuName, which names the callback at eBay.
        assert sent["redirect_uri"] == documented.get("redirect_uri", config.callback_url(name))
        assert len(sent["state"]) >= 32 and sent["state"] != "platform-state"  # the gateway's own nonce
        if "path" in documented:
            assert urlsplit(location).path == documented["path"], location
        for key, value in documented.get("params", {}).items():  # None: present, whatever its value
            assert (key in sent) if value is None else sent.get(key) == value, (key, sent)
        if documented.get("pkce"):
            assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43, sent
        else:
            assert "code_challenge" not in sent, sent
        scope = sent.get(documented.get("scope_param", "scope"), "")
        if "scope_contains" in documented:
            assert documented["scope_contains"] in scope, sent
        else:
            assert scope == documented.get("scope", "read write"), sent
    finally:
        await runner.cleanup()
