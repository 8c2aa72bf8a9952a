// A real SAML 2.0 identity provider on loopback for Portico's tests: Auth0's `samlp` (the IdP
// middleware Auth0 runs) on express. Configured by the JSON in IDP_CONFIG:
//   { "port", "issuer", "acs_url", "cert_file", "key_file", "other_cert_file", "other_key_file",
//     "accounts": { "<login>": { "password", "email", "name", "groups": [] } } }
// GET /metadata is the IdP metadata (SingleSignOnService for HTTP-Redirect and HTTP-POST at
// /sso, the signing certificate). /sso shows a login form; a right password answers the
// AuthnRequest with a signed assertion (ADFS's claim names), posted to the ACS by the browser.
// Requests whose AssertionConsumerServiceURL is not acs_url are refused, as a real IdP does.
//
// For faults a correct provider never makes, POST /__mode?mode=… switches the next answers
// (tests say when they use it):
//   "unsigned":      neither the assertion nor the response is signed;
//   "expired":       signed, but valid until an hour ago;
//   "tampered":      signed, then the e-mail address is changed;
//   "foreign-key":   signed with another key, whose certificate is in the signature's KeyInfo;
//   "audience":      signed, for another service provider's entity id;
//   "sign-response": the response is signed instead of the assertion (valid);
//   "normal":        the assertion is signed (as ADFS does by default).
// GET /__last returns the last answer ({SAMLResponse, RelayState}) so a test can replay it.
const fs = require('node:fs');
const express = require('express');
const samlp = require('samlp');

const config = JSON.parse(process.env.IDP_CONFIG);
const cert = fs.readFileSync(config.cert_file);
const key = fs.readFileSync(config.key_file);
const otherCert = fs.readFileSync(config.other_cert_file);
const otherKey = fs.readFileSync(config.other_key_file);
let mode = 'normal';
let last = null;

const escape = (s) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function ProfileMapper(user) {
  if (!(this instanceof ProfileMapper)) return new ProfileMapper(user);
  this.user = user;
}
ProfileMapper.prototype.metadata = [];
ProfileMapper.prototype.getClaims = function () {
  return {
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress': this.user.email,
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': this.user.name,
    'http://schemas.xmlsoap.org/claims/Group': this.user.groups,
  };
};
ProfileMapper.prototype.getNameIdentifier = function () {
  return {
    nameIdentifier: this.user.id,
    nameIdentifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  };
};

const app = express();
app.use(express.urlencoded({ extended: false, limit: '1mb' }));

app.get(
  '/metadata',
  samlp.metadata({
    issuer: config.issuer,
    cert,
    profileMapper: ProfileMapper,
    redirectEndpointPath: '/sso',
    postEndpointPath: '/sso',
  }),
);

function loginForm(req, res) {
  const p = req.method === 'GET' ? req.query : req.body;
  if (!p.SAMLRequest) return res.status(400).send('<p>No SAMLRequest.</p>');
  res.send(`<!doctype html><html><body><h1>Test IdP: sign in</h1>
<form method="post" action="/login">
<input name="username" autocomplete="username"><input name="password" type="password">
<input type="hidden" name="SAMLRequest" value="${escape(p.SAMLRequest)}">
<input type="hidden" name="RelayState" value="${escape(p.RelayState)}">
<button type="submit" id="sign-in">Sign in</button>
</form></body></html>`);
}
app.get('/sso', loginForm);
app.post('/sso', loginForm);

app.post('/login', (req, res, next) => {
  const account = config.accounts[req.body.username];
  if (!account || account.password !== req.body.password) {
    return res.status(401).send('<p>Wrong username or password.</p>');
  }
  req.user = { id: req.body.username, ...account };
  const options = {
    issuer: config.issuer,
    cert: mode === 'foreign-key' ? otherCert : cert,
    key: mode === 'foreign-key' ? otherKey : key,
    profileMapper: ProfileMapper,
    destination: config.acs_url,
    recipient: config.acs_url,
    signAssertion: mode !== 'unsigned' && mode !== 'sign-response',
    signResponse: mode === 'sign-response',
    lifetimeInSeconds: mode === 'expired' ? -3600 : 300,
    getPostURL(audience, request, req, callback) {
      const acs = request && request.documentElement.getAttribute('AssertionConsumerServiceURL');
      if (acs && acs !== config.acs_url) return callback(null, null);
      callback(null, config.acs_url);
    },
    responseHandler(response, opts, req, res) {
      let xml = response.toString();
      if (mode === 'tampered') xml = xml.split(req.user.email).join('mallory@example.com');
      const SAMLResponse = Buffer.from(xml).toString('base64');
      const RelayState = req.body.RelayState || '';
      last = { SAMLResponse, RelayState };
      res.send(`<!doctype html><html><body onload="document.forms[0].submit()">
<form method="post" action="${escape(config.acs_url)}">
<input type="hidden" name="SAMLResponse" value="${escape(SAMLResponse)}">
<input type="hidden" name="RelayState" value="${escape(RelayState)}">
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>`);
    },
  };
  if (mode === 'audience') options.audience = 'urn:example:another-service';
  samlp.auth(options)(req, res, next);
});

app.post('/__mode', (req, res) => {
  mode = String(req.query.mode);
  res.send('ok');
});
app.get('/__last', (req, res) => res.json(last));

app.listen(config.port, '127.0.0.1');
