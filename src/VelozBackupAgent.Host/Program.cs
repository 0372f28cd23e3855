// Placeholder entry point so the solution (and the integration tests that reference this project)
// build on the skeleton. The real host replaces this file.
return 0;
