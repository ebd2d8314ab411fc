"""The two ways decoding fails: the operator's map is wrong, or the device's message is."""


class ParameterMapError(ValueError):
    """The parameter map itself is wrong (an operator's configuration error)."""


class DecodeError(ValueError):
    """The payload cannot be read with the map; the message goes to the dead letters with this reason."""
