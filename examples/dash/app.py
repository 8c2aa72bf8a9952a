from dash import Dash, Input, Output, dcc, html

app = Dash(__name__, title="Dash demo · Portico")

app.layout = html.Main(
    [
        html.H1("Hello from Dash"),
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
