// Sends a form that only carries data onwards (the SAML POST binding) without a click.
document.forms[0].submit();
