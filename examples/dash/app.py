import flask
from dash import Dash, Input, Output, dcc, html

app = Dash(__name__, title="Dash demo · Portico")

def who():
    """Portico tells every dashboard who is signed in, in request headers."""
    if not flask.has_request_context():  # Dash also builds the layout once at start-up
        return ""
    email = flask.request.headers.get("X-Forwarded-Email")
    groups = flask.request.headers.get("X-Forwarded-Groups") or "none"
    return f"Signed in as {email} (groups: {groups})" if email else "Not signed in."


# A function, so that it runs for every page load and sees that request's headers.
app.layout = lambda: html.Main(
    [
        html.H1("Hello from Dash"),
        html.P(who(), id="who"),
        html.P("Served by Portico. Type a name: the answer comes back through a Dash callback."),
        html.Label("Your name", htmlFor="name"),
        html.Br(),
        dcc.Input(id="name", type="text", value=""),
        html.P(id="greeting"),
    ],
    style={"fontFamily": "system-ui, sans-serif", "maxWidth": "40rem", "margin": "2rem auto"},
)


@app.callback(Output("greeting", "children"), Input("name", "value"))
def greet(name):
    return f"Hello, {name}, from Dash!" if name else "Type your name above."
