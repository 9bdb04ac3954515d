"""A flow written the way Metaflow's tutorials write them; only the import line differs."""

from rayflow import FlowSpec, IncludeFile, Parameter, card, current, step


class PlaylistFlow(FlowSpec):
    """Pick movies of a genre from a CSV file, with a bonus pick in a parallel branch."""

    movie_data = IncludeFile("movie_data", help="The path to a movie metadata file.",
                             default="movies.csv")
    genre = Parameter("genre", help="Filter movies for a particular genre.", default="Sci-Fi")
    recommendations = Parameter("recommendations", help="The number of movies to recommend.",
                                default=3)

    @card
    @step
    def start(self):
        """Parse the CSV file and keep the columns as lists."""
        self.dataframe = dict(movie_title=[], title_year=[], genres=[], gross=[])
        for row in self.movie_data.splitlines()[1:]:
            title, year, genres, gross = row.split(",")
            self.dataframe["movie_title"].append(title)
            self.dataframe["title_year"].append(int(year))
            self.dataframe["genres"].append(genres)
            self.dataframe["gross"].append(int(gross))
        self.next(self.bonus_movie, self.genre_movies)

    @step
    def bonus_movie(self):
        """Choose the highest-grossing movie as a bonus."""
        gross = self.dataframe["gross"]
        self.bonus = self.dataframe["movie_title"][gross.index(max(gross))]
        self.next(self.join)

    @step
    def genre_movies(self):
        """Filter the movies by genre."""
        from random import shuffle

        self.movies = [t for t, g in zip(self.dataframe["movie_title"],
                                         self.dataframe["genres"]) if self.genre.lower()
                       in g.lower()]
        shuffle(self.movies)
        self.run_seen = current.run_id
        self.next(self.join)

    @step
    def join(self, inputs):
        """Join our parallel branches and merge results."""
        self.playlist = inputs.genre_movies.movies
        self.bonus = inputs.bonus_movie.bonus
        self.merge_artifacts(inputs, include=["dataframe"])
        self.next(self.fan_out)

    @step
    def fan_out(self):
        self.next(self.per_movie, foreach="playlist")

    @step
    def per_movie(self):
        self.title_length = len(self.input)
        self.next(self.join_movies)

    @step
    def join_movies(self, inputs):
        self.lengths = [inp.title_length for inp in inputs]
        self.merge_artifacts(inputs, exclude=["title_length"])
        self.next(self.end)

    @step
    def end(self):
        """Print out the playlist and bonus movie."""
        print("Playlist for movies in genre '%s'" % self.genre)
        for pick, movie in enumerate(self.playlist, start=1):
            print("Pick %d: '%s'" % (pick, movie))
            if pick >= self.recommendations:
                break
        print("Bonus Pick: '%s'" % self.bonus)


if __name__ == "__main__":
    PlaylistFlow()
