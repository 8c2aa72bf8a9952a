library(shiny)

ui <- fluidPage(
  title = "R-Shiny demo · Portico",
  h1("Hello from R-Shiny"),
  p("Served by Portico. Type a name: the answer comes back over Shiny's WebSocket, computed in R."),
  textOutput("who"),
  textInput("name", "Your name"),
  textOutput("greeting")
)

server <- function(input, output, session) {
  # Portico sends Shiny-Server-Credentials, so session$user and session$groups work as on
  # Shiny Server and Posit Connect.
  output$who <- renderText({
    if (is.null(session$user)) "Not signed in." else
      paste0("Signed in as ", session$user, " (groups: ",
             if (length(session$groups)) paste(session$groups, collapse = ", ") else "none", ")")
  })

  output$greeting <- renderText({
    if (nzchar(input$name)) paste0("Hello, ", input$name, ", from R-Shiny!") else "Type your name above."
  })
}

shinyApp(ui, server)
