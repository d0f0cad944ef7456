import "@mantine/core/styles.css";
import "@mantine/charts/styles.css";
import "./console.css";
import { createTheme, Drawer, MantineProvider, Modal } from "@mantine/core";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.tsx";

// Darker primary shades than the defaults, so white text on buttons and badges keeps a 4.5:1 contrast.
const theme = createTheme({
  primaryColor: "indigo",
  primaryShade: 8,
  defaultRadius: "md",
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  // Keyboard focus gets the ring (and console.css makes it stronger); a mouse click does not.
  focusRing: "auto",
  // The close button of every dialog and drawer says what it does to a screen reader.
  components: {
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { "aria-label": "Close" } } }),
    Drawer: Drawer.extend({ defaultProps: { closeButtonProps: { "aria-label": "Close" } } }),
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <MantineProvider theme={theme} defaultColorScheme="light">
        <App />
      </MantineProvider>
    </StrictMode>,
  );
}
