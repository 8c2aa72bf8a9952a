library(shiny)

ui <- fluidPage(
  title = "R-Shiny demo · Portico",
  h1("Hello from R-Shiny"),
  p("Served by Portico. Type a name: the answer comes back over Shiny's WebSocket, computed in R."),
  textInput("name", "Your name"),
  textOutput("greeting")
)

server <- function(input, output, session) {
  output$greeting <- renderText({
    if (nzchar(input$name)) paste0("Hello, ", input$name, ", from R-Shiny!") else "Type your name above."
  })
}

shinyApp(ui, server)
