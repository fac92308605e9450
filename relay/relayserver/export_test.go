package relayserver

// HeldAcceptRate is heldAcceptRate, for tests.
const HeldAcceptRate = heldAcceptRate
