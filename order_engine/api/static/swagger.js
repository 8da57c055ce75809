// Swagger UI over the live document; "Authorize" takes the API key when API_KEYS is set.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
});
