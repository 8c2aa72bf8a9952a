from shiny import App, render, ui

app_ui = ui.page_fluid(
    ui.h1("Hello from Shiny for Python"),
    ui.p("Served by Portico. Type a name: the answer comes back over Shiny's WebSocket."),
    ui.output_text("who"),
    ui.input_text("name", "Your name"),
    ui.output_text("greeting"),
    title="Shiny for Python demo · Portico",
)


def server(input, output, session):
    @render.text
    def who():
        # Portico tells every dashboard who is signed in, in request headers.
        headers = session.http_conn.headers
        email = headers.get("x-forwarded-email")
        groups = headers.get("x-forwarded-groups") or "none"
        return f"Signed in as {email} (groups: {groups})" if email else "Not signed in."

    @render.text
    def greeting():
        name = input.name()
        return f"Hello, {name}, from Shiny for Python!" if name else "Type your name above."


app = App(app_ui, server)
