"""The one error type the dev stack raises: its message says what failed and what to do."""


class DevstackError(RuntimeError):
    """A local service could not be installed, started, reached or stopped."""


SETUP_HINT = "Run ./devstack/setup_system.sh (./run test and ./run demo run it for you) to install the system pieces."
