import {
  Alert,
  Button,
  Checkbox,
  CopyButton,
  Group,
  Modal,
  Stack,
  Text,
  TextInput,
  Tooltip,
} from "@mantine/core";
import { type ReactNode, useState } from "react";

export interface SecretField {
  label: string;
  value: string;
}

/** A secret with its copy button. */
export function SecretLine({ label, value, autoFocus }: SecretField & { autoFocus?: boolean }) {
  return (
    <Group align="end" gap="xs" wrap="nowrap">
      <TextInput
        label={label}
        value={value}
        readOnly
        classNames={{ input: "mono" }}
        style={{ flex: 1, minWidth: 0 }}
        onFocus={(e) => e.currentTarget.select()}
        data-testid={`secret-${label.toLowerCase().replaceAll(" ", "-")}`}
      />
      <CopyButton value={value}>
        {({ copied, copy }) => (
          <Tooltip label={copied ? "Copied" : "Copy"} withArrow>
            <Button
              variant={copied ? "filled" : "light"}
              color={copied ? "teal" : undefined}
              onClick={copy}
              aria-label={`Copy ${label.toLowerCase()}`}
              data-autofocus={autoFocus ? true : undefined}
            >
              {copied ? "Copied" : "Copy"}
            </Button>
          </Tooltip>
        )}
      </CopyButton>
    </Group>
  );
}

/**
 * Shows a key, secret or password that will never be shown again. It cannot be dismissed by accident:
 * the close button, Escape and the backdrop all ask for the same confirmation as "Done".
 */
export function ShowOnceModal({
  opened,
  title,
  fields,
  note,
  onClose,
  kept = "Latchkey keeps only a hash",
  children,
}: {
  opened: boolean;
  title: string;
  fields: SecretField[];
  note?: string;
  onClose: () => void;
  /** How Latchkey keeps the value, which is why it cannot be shown again. */
  kept?: string;
  /** More to show with the values (a key's ready-to-run snippets). */
  children?: ReactNode;
}) {
  const [saved, setSaved] = useState(false);
  const [nudge, setNudge] = useState(false);
  const tryClose = () => {
    if (saved) {
      setSaved(false);
      setNudge(false);
      onClose();
    } else {
      setNudge(true);
    }
  };
  return (
    <Modal
      opened={opened}
      onClose={tryClose}
      title={title}
      size="lg"
      closeOnClickOutside={false}
      trapFocus
      returnFocus
      data-testid="show-once"
    >
      <Stack>
        <Alert color="yellow" variant="light" title="Copy it now" role="note">
          This is the only time {fields.length > 1 ? "these values are" : "this value is"} shown. {kept}, so{" "}
          {fields.length > 1 ? "they" : "it"} cannot be shown again.
          {note ? ` ${note}` : ""}
        </Alert>
        {fields.map((f, i) => (
          <SecretLine key={f.label} {...f} autoFocus={i === 0} />
        ))}
        {children}
        <Checkbox
          checked={saved}
          onChange={(e) => {
            setSaved(e.currentTarget.checked);
            setNudge(false);
          }}
          label="I have copied it and stored it somewhere safe"
          error={nudge ? "Confirm you have stored it before closing: it cannot be shown again." : undefined}
        />
        <Group justify="end">
          <Button onClick={tryClose}>Done</Button>
        </Group>
        <Text size="xs" c="dimmed">
          Closing without copying means creating a new one.
        </Text>
      </Stack>
    </Modal>
  );
}
